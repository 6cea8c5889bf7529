"""launch/studies/daa_mini_trajectory.py: choosing the run, the table, and its one-line errors (the diagnoses it
tabulates are daa.diagnose's, tested in test_diagnose / test_condition_preference)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "launch" / "studies"))
_spec = importlib.util.spec_from_file_location("daa_mini_trajectory",
                                               ROOT / "launch" / "studies" / "daa_mini_trajectory.py")
traj = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(traj)

PLAN = """studies:
  - {name: s, task: noise, split: val, seeds: [0], set: [run.total_images=64],
     arms: [{name: baseline}, {name: daa-a3, variant: daa, set: [objective.alpha_max=3.0]}]}
"""


def test_find_arm(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    st, arm = traj.find_arm(plan, "s", "daa-a3")
    assert st.task == "noise" and arm.sets == ("objective.alpha_max=3.0",)
    with pytest.raises(ValueError, match="not a DAA arm"):
        traj.find_arm(plan, "s", "baseline")  # no diffusion model to diagnose
    with pytest.raises(ValueError, match="not in"):
        traj.find_arm(plan, "t", "daa-a3")


def _row(seen, cos, clean):
    probe = {"cos_oracle": cos, "cos_real": 0.01, "cos_smooth": 0.02}
    cond = {k: [clean if k == "clean − restored" else 0.0, 0.1] for k in traj.COLUMNS}
    return {"images_seen": seen, "alpha": 1.5, "rows": {"all": probe}, "conditions": {"all": cond}}


def test_trajectory_table():
    md = traj.trajectory_md("title", [_row(100, 0.5, 1.25), _row(200, -0.25, -0.5)], same=True)
    lines = md.splitlines()
    assert lines[0] == "#### title" and "byte-identical" in lines[2]
    assert lines[6].startswith("| 100 | 1.500 | +0.500 | +0.010 | +0.020 | +1.25 ± 0.10 |")
    assert lines[7].startswith("| 200 | 1.500 | -0.250 |") and "| -0.50 ± 0.10 |" in lines[7]
    assert all(len(x.split("|")) == len(lines[4].split("|")) for x in lines[4:])
    assert "differ" in traj.trajectory_md("t", [], same=False) and "not here" in traj.trajectory_md("t", [], None)


@pytest.mark.parametrize("args,msg", [
    (["--study", "s", "--arm", "daa-a3", "--every", "0"], "--every must be"),
    (["--study", "s", "--arm", "daa-a3", "--every", "32"], "no DAA-mini data for task noise"),
])
def test_one_line_errors(tmp_path, args, msg):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    r = subprocess.run([sys.executable, str(ROOT / "launch" / "studies" / "daa_mini_trajectory.py"), "--plan",
                        str(plan), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out"), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written
