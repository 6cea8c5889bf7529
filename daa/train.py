"""Train a DAA restorer: `daa-train` (console script) or `launch/train.py`, the same under every launcher:

    daa-train --config demo                                          # one process (CPU or one GPU)
    deepspeed --num_gpus 8 launch/train.py --config denoise          # OMP_NUM_THREADS=1 on CPU
    torchrun --nproc_per_node 2 launch/train.py --config demo        # or: torchrun ... -m daa.train
    accelerate launch --multi_gpu --num_processes 2 launch/train.py --config demo   # also on CPU
    daa-train --config denoise --set run.micro_batch=16 --set data.shards=/data/dfwb --dry-run

A rerun of the same command in the same run directory resumes from the last complete checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo", help="a YAML path or a name in daa/configs/ (default: demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set run.zero_stage=3 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and DeepSpeed JSON, then exit")
    p.add_argument("--world-size", type=int, default=None, help="world size assumed by --dry-run (default: env)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # torch 2.13 deprecates the collectives DeepSpeed's ZeRO uses; one warning per call would flood the log
    warnings.filterwarnings("ignore", message=r".*(all_gather_into_tensor|reduce_scatter_tensor).*")
    from daa.config import ConfigError, deepspeed_config, dump_yaml, load_config

    cfg = trainer = None
    try:
        cfg = load_config(args.config, args.overrides)
        if args.dry_run:
            world = args.world_size or int(os.environ.get("WORLD_SIZE", 1))
            print(dump_yaml(cfg))
            print(f"# DeepSpeed config (world size {world})")
            print(json.dumps(deepspeed_config(cfg, world), indent=2))
            return 0
        from daa.training.trainer import Trainer

        trainer = Trainer(cfg)
        try:
            trainer.fit()
        finally:
            trainer.close()
        # tear the process group down before the interpreter exits: left to interpreter shutdown, gloo's threads
        # sometimes abort the process ("terminate called without an active exception", exit -6) after a run that
        # finished and checkpointed, and the launcher (torchrun, srun) then reports the job as failed
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - known failure modes become one line; anything else keeps its traceback
        msg = _known_failure(e, cfg, in_fit=trainer is not None)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 3
    return 0


def _known_failure(e: BaseException, cfg, in_fit: bool) -> str | None:
    """One line for the failures a user must act on: unusable shards, a checkpoint that could not be
    written, a collective that failed because another rank died or hung (during training or start-up), a process
    group that never formed because a rank did not start. None for anything else (other set-up failures, such as a
    busy port, keep their traceback)."""
    from daa.training.trainer import CheckpointWriteError, NonFiniteError
    from data_shards.stream import DataError

    if isinstance(e, (CheckpointWriteError, NonFiniteError)):
        return str(e)
    text = str(e)
    if isinstance(e, DataError):  # re-raised by a DataLoader worker with the worker's traceback inside
        last = [x for x in text.strip().splitlines() if x.strip()][-1]
        return last.split("DataError: ", 1)[-1]
    import torch.distributed as dist

    rank = os.environ.get("RANK", "0")
    first = next((x.strip() for x in text.splitlines() if x.strip()), type(e).__name__)
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # gloo's "[/path/to/pair.cc:534] " source location
    timeout = f"run.dist_timeout_minutes={cfg.run.dist_timeout_minutes:g}" if cfg is not None else "the timeout"
    dist_error = getattr(dist, "DistError", ())
    if not in_fit and not dist.is_initialized():
        # the group never formed: rank 0 waited for ranks that never came, or a rank never reached rank 0's store
        if isinstance(e, dist_error) and ("waiting for clients" in text or
                                          ("timed out" in text and "trying to connect" in text)):
            return (f"rank {rank}: the process group did not form within {timeout} ({type(e).__name__}: "
                    f"{first[:200]}); a rank did not start or died during start-up, or MASTER_ADDR/MASTER_PORT "
                    "differ between ranks: check the other ranks' output, then rerun the same command")
        return None
    if isinstance(e, RuntimeError) and "DataLoader worker" in text and (
            "exited unexpectedly" in text or "killed by signal" in text):
        # seen when the launcher stops this rank (and its loader workers) because another rank failed first
        return (f"rank {rank}: a DataLoader worker died ({first[:200]}); if another rank reported an error, that is "
                "the cause; rerun the same command to resume from the last complete checkpoint")
    if isinstance(e, dist_error) or (isinstance(e, RuntimeError) and any(
            k in text for k in ("gloo", "Gloo", "NCCL", "Connection closed by peer", "Connection reset", "timed out"))):
        when = "" if in_fit else " during start-up"
        return (f"rank {rank}: a collective operation failed{when} — another rank died or did not answer within "
                f"{timeout} ({type(e).__name__}: {first[:200]}); "
                "rerun the same command to resume from the last complete checkpoint")
    return None


def cli() -> None:
    """The `daa-train` console script and launch/train.py: main(), then exit without interpreter teardown.

    Everything is written and closed by then. Skipping teardown matters: destroying the c10d/gloo and DataLoader C++
    objects at exit sometimes hits "terminate called without an active exception" (SIGABRT), which the launcher then
    reports as a failed job although training completed."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's Python stack: where a hung rank waits
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    cli()
