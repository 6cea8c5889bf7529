"""`make demo`: its config trains exactly DAA-mini's rain setting (so the 3-seed figure it quotes applies), it reads
that figure from docs/results/summary.json, and --quick runs end to end."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from daa.config import load_config

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("demo", ROOT / "launch" / "studies" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def test_demo_config_is_daa_minis_rain_setting():
    """demo_rain.yaml = daa_mini.yaml + the overrides of the `daa` row of the plan's final rain study."""
    import yaml

    plan = yaml.safe_load((ROOT / "launch" / "studies" / "plans" / "daa_mini.yaml").read_text())
    rain = next(st for st in plan["studies"] if st["name"] == "rain" and st["split"] == "test")
    arm = next(a for a in rain["arms"] if a.get("label", a["name"]) == "daa")
    a = dataclasses.asdict(load_config("demo_rain", ["objective.mode=daa"]))
    b = dataclasses.asdict(load_config("daa_mini", ["objective.mode=daa", "data.task=derain", *rain.get("set", []),
                                                    *arm.get("set", [])]))
    for sec in ("model", "objective", "schedule", "optim"):
        assert a[sec] == b[sec], sec
    for k in ("task", "patch_size", "awgn_sigma", "value_range"):
        assert a["data"][k] == b["data"][k], k
    for k in ("total_images", "global_batch", "ema_half_life_images", "precision", "seed"):
        assert a["run"][k] == b["run"][k], k
    # the only differences: how it is run (2 ranks × micro-batch 8 under ZeRO-2 instead of one process)
    assert (a["run"]["micro_batch"], a["run"]["zero_stage"]) == (8, 2)


def test_reference_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "RESULTS", tmp_path / "summary.json")
    assert "not available" in demo.reference_figure()
    (tmp_path / "summary.json").write_text(json.dumps([
        {"study": "rain-alpha", "split": "val", "verdict": {"status": "validation split: no verdict"}},
        {"study": "rain", "split": "test", "verdict": {"seeds": 3, "gain_db": 0.61, "pooled_std": 0.08,
                                                       "status": "reproduced"}}]))
    line = demo.reference_figure()
    assert "3 seeds: +0.61 dB, pooled seed std 0.08 dB (reproduced" in line


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "launch/studies/demo.py", "--quick", "--out", str(out), "--data",
                        str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["rows"]) == {"input (rainy)", "baseline", "DAA"}
    assert "DAA − baseline" in r.stdout and "DAA-mini" in r.stdout
    assert (out / "samples.png").stat().st_size > 1000 and (out / "loss_curves.png").is_file()


def test_sample_crops_are_typical_rain_plus_the_heaviest():
    """Chosen from the input's PSNR alone: the 3 nearest the median, then the lowest (not 'where both fail')."""
    psnr = [30.0, 10.0, 20.0, 21.0, 19.0, 25.0, 15.0, 22.5]
    picks = demo.pick_crops(psnr)
    assert picks == [(4, "median rain"), (2, "median rain"), (3, "median rain"), (1, "heaviest rain")]
    assert [i for i, _ in demo.pick_crops([5.0, 6.0])] == [1, 0]  # fewer crops than asked: each once


def test_samples_figure(tmp_path):
    import torch

    g = torch.Generator().manual_seed(0)
    y = torch.rand(5, 3, 16, 16, generator=g)
    x, base = (y + 0.2 * torch.rand(5, 3, 16, 16, generator=g)).clamp(0, 1), (y + 0.05).clamp(0, 1)
    demo.save_samples(tmp_path / "s.png", x, base, y, y, demo.pick_crops([20.0, 12.0, 18.0, 19.0, 25.0]))
    from PIL import Image

    w, h = Image.open(tmp_path / "s.png").size
    assert w > 1000 and h > 4 * 200  # 5 panels a row, 4 rows
