"""Resuming on another number of ranks (elastic resume): DeepSpeed universal checkpoints, made on demand.

A ZeRO-1/2/3 checkpoint holds the fp32 master weights and Adam moments partitioned over the ranks that wrote it, so
it only loads at its own data-parallel world size. When the newest complete checkpoint was written by another number
of ranks, rank 0 converts it with DeepSpeed's own `ds_to_universal` (one file per parameter and state: fp32 weight,
exp_avg, exp_avg_sq, step) into `run_dir/universal/<tag>/`, the engine is built with `checkpoint.load_universal`,
and every rank loads its new partition from there. The original checkpoint is left as it was; the conversion is
written under a temporary name and renamed, so a cut-off conversion is redone, never used; it is made once per tag
and removed with the checkpoint it came from (CheckpointDir.prune). Without ZeRO (stage 0) every rank holds the
whole optimizer state and the checkpoint loads at any world size as it is.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import time
from pathlib import Path

UNIVERSAL = "universal"
"""Folder of the run directory that holds universal conversions, one per tag."""


def plan_elastic(run_dir: Path, dist, zero_stage: int) -> dict | None:
    """When the newest complete checkpoint of `run_dir` was written by another number of ranks: its tag and world
    size, and (ZeRO 1-3) the universal conversion that rank 0 makes and every rank then loads its new partition
    from. Collective (a barrier) when a conversion is made."""
    from .checkpoint import CheckpointDir
    from .distributed import barrier

    ckpt = CheckpointDir(run_dir)
    tag = ckpt.latest(warn=False)
    saved = saved_world_size(ckpt.root / tag) if tag else None
    if saved is None or saved == dist.world_size:
        return None
    plan = {"tag": tag, "from_world": saved, "seconds": 0.0, "bytes": 0}
    if zero_stage > 0:
        if dist.is_main:
            plan.update(convert_to_universal(ckpt.root, tag, run_dir))
        barrier()
    return plan


def load_rank_states_resharded(trainer, tag: str, from_world: int) -> None:
    """Trainer state of a checkpoint written by `from_world` ranks: every rank reads all of them. The data stream
    continues the epoch in progress from the cursors of all old ranks (its `load_resharded`, which counts any sample
    it must repeat or skip); the RNG states come from old rank r % from_world (every random draw of a micro-step is
    seeded from (seed, rank, micro-step) anyway)."""
    from .checkpoint import set_rng_state

    rank = trainer.dist.rank
    states = [trainer.ckpt.read_rank_state(tag, r) for r in range(from_world)]
    streams = [s.get("stream") if s else None for s in states]
    stream = trainer.stream
    if hasattr(stream, "load_resharded") and all(x is not None for x in streams):
        stream.load_resharded(streams)
        moved = {k: v for k, v in (getattr(stream, "stats", None) or {}).items() if k.startswith("resharded_")}
        counts = ", ".join(f"{k}={v}" for k, v in moved.items()) or "no sample counts (procedural data)"
        trainer.log.info(f"data stream resharded from {from_world} to {trainer.dist.world_size} rank(s): {counts}")
    own = states[rank % from_world]
    if own is not None:
        set_rng_state(own["rng"])


def saved_world_size(tag_dir: Path) -> int | None:
    """Ranks that wrote the checkpoint: one trainer_rank<r>.pt per rank (None when there is none)."""
    n = len(list(tag_dir.glob("trainer_rank*.pt")))
    return n or None


def universal_dir(run_dir: Path) -> Path:
    return Path(run_dir) / UNIVERSAL


def convert_to_universal(ckpt_root: Path, tag: str, run_dir: Path) -> dict:
    """Convert checkpoint `ckpt_root/tag` into `run_dir/universal/tag` (rank 0 only; idempotent). Returns the
    conversion's wall time (s; 0 when it existed: `reused`) and the extra disk it takes (bytes)."""
    from deepspeed.checkpoint import ds_to_universal

    out_root = universal_dir(run_dir)
    final = out_root / tag
    t0 = time.perf_counter()
    reused = final.is_dir()  # made by an earlier attempt that stopped before its next checkpoint
    if not reused:
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = out_root / f".{tag}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        args = argparse.Namespace(input_folder=str(ckpt_root / tag), output_folder=str(tmp), num_extract_workers=1,
                                  num_merge_workers=1, keep_temp_folder=False, strict=True,
                                  inject_missing_state=True)  # our models carry no universal-checkpoint info
        with contextlib.redirect_stdout(io.StringIO()):  # its progress prints and bars: not for the training log
            ds_to_universal.main(args)
        (out_root / "latest_universal").unlink(missing_ok=True)  # names the temporary folder; tags are explicit
        os.replace(tmp, final)
        seconds = time.perf_counter() - t0
    else:
        seconds = 0.0
    size = sum(p.stat().st_size for p in final.rglob("*") if p.is_file())
    return {"seconds": seconds, "bytes": size, "reused": reused}


def prune_universal(run_dir: Path, keep_tags: set[str]) -> None:
    """Remove conversions whose source checkpoint is gone (and cut-off temporary ones)."""
    root = universal_dir(run_dir)
    for p in root.iterdir() if root.is_dir() else []:
        if p.is_dir() and p.name not in keep_tags:
            shutil.rmtree(p, ignore_errors=True)
