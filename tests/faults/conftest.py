"""Fixtures and reporting of the reliability suite (docs/RELIABILITY.md).

Markers: `faults` = the full suite (`make test-faults`); `faults_fast` = the subset `make test` runs (corrupt data,
numerical faults, a third of the bad-input cases). Every case records one or more summary rows; at the end of the
session they are printed as the case | what was done | expected | observed | held? table and, with
`--faults-report PATH`, written there."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faultlib import RETRIES, Ctx, table  # noqa: E402

_ROWS: list = []
_T0 = time.time()


def pytest_addoption(parser):
    g = parser.getgroup("faults", "reliability suite")
    g.addoption("--faults-report", default=None, help="write the summary table (markdown) to this file")
    g.addoption("--faults-seed", type=int, default=0, help="picks the kill steps and corrupted samples")
    g.addoption("--faults-keep", action="store_true", help="keep the temporary run directories")


@pytest.fixture(scope="session")
def ctx(request):
    """The suite's temporary tree and its shared, lazily trained uninterrupted reference run."""
    tmp = Path(tempfile.mkdtemp(prefix="daa_faults_"))
    yield Ctx(tmp, False, request.config.getoption("--faults-seed"))
    if not request.config.getoption("--faults-keep"):
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def record():
    """record(rows): add a case's summary rows; fails the test if any did not hold."""
    def _record(rows, label: str):
        rows = rows if isinstance(rows, list) else [rows]
        _ROWS.extend(rows)
        for r in rows:
            print(f"[{time.time() - _T0:6.1f}s] {'held  ' if r.held else 'FAILED'} {r.case}: {r.observed}", flush=True)
        bad = [f"{r.case}: {r.observed}" for r in rows if not r.held]
        assert not bad, f"{label}: " + " | ".join(bad)
    return _record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _ROWS:
        return
    held = sum(r.held for r in _ROWS)
    text = table(_ROWS) + (f"\n\n{held}/{len(_ROWS)} held; {time.time() - _T0:.0f} s wall; {len(RETRIES)} launch(es) "
                           f"retried after a launcher start-up failure{': ' + '; '.join(RETRIES) if RETRIES else ''}\n")
    terminalreporter.write_sep("=", "reliability suite")
    terminalreporter.write_line(text)
    path = config.getoption("--faults-report")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
