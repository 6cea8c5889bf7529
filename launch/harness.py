"""What the harnesses share — benchmarks (launch/bench, launch/bench/kernels, the loader benchmark), studies
(launch/studies) and the fault suite: the checkout's commit, CSV rows with a fixed header, free TCP ports, quantiles
of timings.

Product code never imports this module (it lives beside the product, not in it).
"""
from __future__ import annotations

import csv
import os
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_sha(repo: str | os.PathLike = REPO, short: int = 12, dirty: bool = False) -> str:
    """HEAD's sha (`git rev-parse`), with '+dirty' when asked and tracked files changed; 'unknown' outside a
    checkout or without git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        if dirty and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip():
            sha += "+dirty"
        return sha[:short] + sha[40:] if short else sha
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the product's own helper: one implementation)."""
    from daa.training.distributed import free_port as _free

    return _free()


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) with linear interpolation between order statistics (numpy's default)."""
    if not xs:
        raise ValueError("quantile of no values")
    if len(xs) == 1 or q <= 0:
        return min(xs) if q <= 0 else xs[0]
    if q >= 1:
        return max(xs)
    cuts = statistics.quantiles(xs, n=1000, method="inclusive")  # cut k is the (k+1)/1000 quantile
    k = round(q * 1000) - 1
    return cuts[k] if 0 <= k < len(cuts) else max(xs)


class CsvLog:
    """Rows appended to a CSV whose header is `fields`. A file with another header is refused (one line, file left
    untouched) unless an alternative name is allowed: then rows go to `<stem>_v2<suffix>` beside it."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], allow_alt: bool = False):
        self.fields = list(fields)
        self.path, self.note = Path(path), None
        head = self._header(self.path)
        if head is not None and head != self.fields:
            alt = self.path.with_name(self.path.stem + "_v2" + self.path.suffix)
            alt_head = self._header(alt)
            if not allow_alt or (alt_head is not None and alt_head != self.fields):
                raise SystemExit(f"error: {self.path} has another column set; pass another CSV path")
            self.note = f"{self.path} has an older column set: rows go to {alt} instead"
            self.path = alt

    @staticmethod
    def _header(path: Path) -> list[str] | None:
        if not path.exists() or path.stat().st_size == 0:
            return None
        with path.open(newline="") as f:
            return next(csv.reader(f), None)

    def append(self, rows: Iterable[dict]) -> int:
        """Append rows (missing fields are left empty, keys outside the header ignored); returns how many."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = self._header(self.path) is None
        n = 0
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, restval="", extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow(r)
                n += 1
        return n
