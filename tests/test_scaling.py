"""launch/bench/scaling.py: the ring-factor byte count and the step-time model, and a 2-rank measurement end to end
on tiny networks."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import launch.bench.scaling as sc  # noqa: E402


def test_ring_bytes_and_model():
    ops = [{"kind": "all_reduce", "bytes": 1000, "count": 1}, {"kind": "all_gather", "bytes": 250, "count": 2}]
    # all-reduce 2(N−1)/N·S; a logged all-gather is one of 2 ranks' partitions: S = 500, (N−1)/N·S each
    assert sc.bytes_per_gpu(ops, 4) == pytest.approx(1000 * 1.5 + 2 * 500 * 0.75)
    assert sc.paper_bytes_per_gpu(2, 100, "fp32", 2) == pytest.approx(2 * 100 * 4 * 0.5)
    assert sc.paper_bytes_per_gpu(3, 100, "bf16", 2) == pytest.approx(3 * 100 * 2 * 0.5)
    p = sc.predict(0.0, 16, step_ms=100, batch=10, nvlink_gbs=450, ib_gbps=400, nics_per_node=8)
    assert p["no overlap"]["efficiency"] == pytest.approx(1.0) and p["no overlap"]["img_s"] == pytest.approx(1600)
    q = sc.predict(50e6, 16, step_ms=100, batch=10, nvlink_gbs=450, ib_gbps=400, nics_per_node=8)
    # 50 MB over a 400 Gb/s NIC per GPU = 1 ms; a NIC shared by 8 GPUs is 8× slower
    assert q["comm_ms"] == pytest.approx(1.0) and q["full overlap"]["efficiency"] == pytest.approx(1.0)
    shared = sc.predict(50e6, 16, step_ms=100, batch=10, nvlink_gbs=450, ib_gbps=400, nics_per_node=1)
    assert shared["comm_ms"] == pytest.approx(8.0)
    assert shared["no overlap"]["efficiency"] == pytest.approx(100 / 108)


def test_measured_on_two_ranks(tmp_path):
    out = tmp_path / "scaling"
    assert sc.main(["--no-paper", "--stages", "2", "--precisions", "fp32", "--out", str(out)]) == 0
    text = (out.with_suffix(".md")).read_text()
    assert "| 2 | fp32 |" in text and "all_gather" in text and "400 Gb/s per NIC, 8 NIC(s)" in text
