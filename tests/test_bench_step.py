"""Smoke test of launch/bench/step.py: the joint-step benchmark at its --quick CPU size prints a table and appends
CSV rows with positive images/s for the faithful official step, the bare objective step and the Trainer's step.
(The ZeRO memory benchmark, launch/bench/zero_memory.py, starts 2 DeepSpeed ranks and takes ~40 s; not run here.)"""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX subprocess")
def test_bench_step_quick_writes_table_and_csv(tmp_path):
    out_csv = tmp_path / "step.csv"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # the --quick size is the CPU smoke size
    proc = subprocess.run([sys.executable, str(REPO / "launch" / "bench" / "step.py"), "--quick", "--csv",
                           str(out_csv)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    table = {}
    for line in proc.stdout.splitlines():  # "default  official fp32  2  32x32  2  ms ... img/s  1.00x  ok"
        m = re.match(r"^default\s+((?:official|ours|trainer) fp32)\s+2\s+32x32\s+\d+\s+[\d.]+\s+\[.*\]\s+([\d.]+)\s",
                     line)
        if m:
            table[m.group(1)] = float(m.group(2))
    assert {"official fp32", "ours fp32", "trainer fp32"} <= set(table), proc.stdout
    assert all(v > 0 for v in table.values()), table
    assert re.search(r"target >= 1\.3x: (MET|NOT MET)", proc.stdout), proc.stdout

    with out_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for r in rows:
        assert r["part"] == "step" and r["status"] == "ok" and r["device"].startswith("cpu")
        assert r["timestamp"] and r["git_sha"] and r["torch"] and r["deepspeed"]
        assert float(r["img_s"]) > 0 and int(r["steps"]) > 0 and int(r["B"]) == 2
    assert {r["impl"] for r in rows} == {"official", "ours", "trainer"}
    assert "the bare objective step" in proc.stdout  # what the trainer's own work costs


def test_trainer_rows_record_the_levers_they_ran_with():
    """A --trainer-set lever shows in the trainer row's variant name and layout (a channels_last trainer was once
    recorded as contiguous)."""
    import types

    sys.path.insert(0, str(REPO))
    import launch.bench.step as bs

    trainer = types.SimpleNamespace(impl="trainer", channels_last=False)
    ours_cl = types.SimpleNamespace(impl="ours", channels_last=True)
    plain = types.SimpleNamespace(trainer_sets=[])
    cl = types.SimpleNamespace(trainer_sets=["run.channels_last=true"])
    assert bs._memory_format(plain, trainer) == "contiguous" and bs._trainer_levers(plain, trainer) == ""
    assert bs._memory_format(cl, trainer) == "channels_last"
    assert bs._trainer_levers(cl, trainer) == " [run.channels_last=true]"
    assert bs._memory_format(cl, ours_cl) == "channels_last" and bs._trainer_levers(cl, ours_cl) == ""
    from launch.bench.step_runners import parse_variants

    (t_cl,) = parse_variants("trainer-fp32-cl")
    assert t_cl.name == "trainer fp32 +cl" and bs._memory_format(plain, t_cl) == "channels_last"
    with pytest.raises(SystemExit, match="no -compile"):
        parse_variants("trainer-fp32-compile")
