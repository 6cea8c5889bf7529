"""launch/bench/profile_step.py: the convolution-share profile behind the CPU step-speed ceiling."""
import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import launch.bench.profile_step as profile_step  # noqa: E402


def test_conv_op_names():
    for name in ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward"):
        assert profile_step.is_conv(name)
    for name in ("aten::native_group_norm", "aten::addmm", "aten::copy_", "aten::silu_backward"):
        assert not profile_step.is_conv(name)


def test_profile_writes_both_forms(tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert profile_step.main(["--batch", "1", "--size", "16", "--steps", "1", "--threads", "1", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["form"] for r in rows] == ["official", "ours"]
    for r in rows:
        total, conv = float(r["total_s"]), float(r["conv_s"])
        assert 0 < conv < total  # convolutions found, and not the whole step
        assert float(r["ceiling"]) > 0
    assert "ceiling" in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(SystemExit, match="--batch"):
        profile_step.main(["--batch", "0"])


def test_refuses_a_csv_of_another_layout(tmp_path):
    other = tmp_path / "step.csv"
    other.write_text("timestamp,git_sha,device\nx,y,z\n")
    with pytest.raises(SystemExit, match="another column set"):
        profile_step.main(["--csv", str(other)])
    assert other.read_text() == "timestamp,git_sha,device\nx,y,z\n"  # untouched
