"""A stall watchdog for multi-rank training: a rank that makes no progress for too long exits with one error line.

Every collective carries run.dist_timeout_minutes, but the backend does not always honour it: gloo was seen (torch
2.13, DeepSpeed ZeRO-2 on CPU, a loaded machine) to sit in a gradient all-reduce for minutes after its peer was
stopped (SIGSTOP) instead of failing after the 15 s timeout. A hung job that never exits holds its nodes until the
Slurm time limit. The trainer calls `beat()` after each micro-step, log reduction, evaluation and checkpoint; if no
beat comes for `limit_s`, this thread prints the same kind of one-line error the collective would have raised and
ends the process (exit 3), so srun/torchrun see a failed rank and a rerun resumes from the last complete checkpoint.

The limit is twice the collective timeout (at least timeout + 30 s): any phase longer than the timeout already fails
the ranks waiting for it in their next collective, so this only catches what the backend's own timeout missed.
"""
from __future__ import annotations

import os
import sys
import threading
import time


def stall_limit_s(timeout_minutes: float) -> float:
    t = 60.0 * timeout_minutes
    return t + max(t, 30.0)


class StallWatchdog:
    def __init__(self, limit_s: float, rank: int, timeout_minutes: float, poll_s: float | None = None,
                 exit_fn=os._exit):
        self.limit_s = limit_s
        self.rank = rank
        self.timeout_minutes = timeout_minutes
        self.poll_s = poll_s if poll_s is not None else min(5.0, limit_s / 10)
        self._exit = exit_fn
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daa-stall-watchdog", daemon=True)

    def start(self) -> StallWatchdog:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def message(self, idle_s: float) -> str:
        return (f"rank {self.rank}: no training progress for {idle_s:.0f} s (limit {self.limit_s:.0f} s) — stuck in a "
                f"collective whose peer died or hung (run.dist_timeout_minutes={self.timeout_minutes:g} did not end "
                "it) or in its own work (a data read that never returns); rerun the same command to resume from the "
                "last complete checkpoint")

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            idle = time.monotonic() - self._last
            if idle > self.limit_s:
                print(f"error: {self.message(idle)}", file=sys.stderr, flush=True)
                sys.stdout.flush()
                self._exit(3)
                return
