"""Checkpoint bookkeeping around DeepSpeed's `save_checkpoint`: complete-markers, per-rank trainer state, pruning.

Layout: run_dir/checkpoints/step000001234/ holds DeepSpeed's files (model, ZeRO optimizer partitions, client state)
plus `trainer_rank{r}.pt` from every rank (data-stream state, RNG states) and, last, a `COMPLETE` marker written by
rank 0 after a barrier. A directory without the marker is a checkpoint that was cut off (preemption, disk full): it
is skipped with a warning and the previous complete one is used. DeepSpeed's own `latest` file is not trusted for
that reason.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

MARKER = "COMPLETE"


def tag_for(step: int) -> str:
    return f"step{step:09d}"


class CheckpointDir:
    def __init__(self, run_dir: str | os.PathLike):
        self.root = Path(run_dir) / "checkpoints"

    def complete_tags(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / MARKER).is_file())

    def latest(self, warn: bool = True) -> str | None:
        """The newest complete tag; warns about newer directories that were never completed."""
        tags = self.complete_tags()
        newest = tags[-1] if tags else None
        if warn:
            for b in self.incomplete_newer(newest):
                warnings.warn(f"checkpoint {self.root / b} is incomplete (no {MARKER} marker); skipping it",
                              stacklevel=2)
        return newest

    def incomplete_newer(self, newest: str | None) -> list[str]:
        """Checkpoint directories newer than `newest` that never got their marker (cut off while being written)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and p.name.startswith("step") and not (p / MARKER).is_file()
                      and (newest is None or p.name > newest))

    def write_rank_state(self, tag: str, rank: int, state: dict[str, Any]) -> None:
        path = self.root / tag / f"trainer_rank{rank}.pt"
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def read_rank_state(self, tag: str, rank: int) -> dict[str, Any] | None:
        path = self.root / tag / f"trainer_rank{rank}.pt"
        return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None

    def mark_complete(self, tag: str, config_hash: str = "") -> None:
        """The marker holds the writer's config hash, so a run dir can refuse foreign checkpoints before loading
        them. Written to a temp name and renamed: a marker is either absent or whole."""
        tmp = self.root / tag / (MARKER + ".tmp")
        tmp.write_text(f"{config_hash or 'ok'}\n")
        os.replace(tmp, self.root / tag / MARKER)

    def config_hash(self, tag: str) -> str | None:
        """The config hash recorded in `tag`'s marker (None for markers written before it was recorded)."""
        text = (self.root / tag / MARKER).read_text().strip()
        return None if text in ("", "ok") else text

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` complete checkpoints (and incomplete ones older than the newest)."""
        tags = self.complete_tags()
        removed = tags[:-keep] if keep > 0 else []
        newest = tags[-1] if tags else ""
        for p in self.root.iterdir() if self.root.is_dir() else []:
            if p.is_dir() and p.name.startswith("step") and not (p / MARKER).is_file() and p.name < newest:
                removed.append(p.name)
        for t in removed:
            shutil.rmtree(self.root / t, ignore_errors=True)
        return removed


def rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state()
    return s


def set_rng_state(s: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state(s["cuda"])
