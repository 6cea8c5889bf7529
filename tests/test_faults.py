"""The reliability suite (launch/faults.py, issue #7) in the CPU test suite: its fast groups (corrupt data,
numerical faults, the bad-input cases of --quick) as real subprocesses. The whole suite, with preemption and rank
deaths, is `python launch/faults.py` (`make test-faults`)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fault_suite_quick_subset(tmp_path):
    report = tmp_path / "faults.md"
    p = subprocess.run([sys.executable, str(ROOT / "launch" / "faults.py"), "--quick", "--only",
                        "corrupt,numeric,bad_input", "--report", str(report)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    text = report.read_text()
    assert "corrupt data: 100 %" in text and "numeric:" in text and "bad input:" in text
    assert "**NO**" not in text
