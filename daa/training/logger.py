"""Run logging on rank 0: `stats.jsonl` (one JSON object per log interval), TensorBoard scalars, and `log.txt`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class RunLogger:
    def __init__(self, run_dir: str | Path, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stats = open(self.run_dir / "stats.jsonl", "a", buffering=1)
        self._log = open(self.run_dir / "log.txt", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
                self.info("tensorboard unavailable; logging to stats.jsonl only")

    def info(self, msg: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        self._log.write(line + "\n")

    def stats(self, record: dict[str, Any], images_seen: int) -> None:
        if not self.enabled:
            return
        self._stats.write(json.dumps(record, default=float) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("images_seen", "step"):
                    self._tb.add_scalar(k, v, images_seen)
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._stats.close()
            self._log.close()
            if self._tb is not None:
                self._tb.close()
