"""Train a DAA restorer. The same script runs under every launcher:

    python launch/train.py --config demo                          # one process (CPU or one GPU)
    deepspeed --num_gpus 8 launch/train.py --config denoise       # OMP_NUM_THREADS=1 on CPU
    torchrun --nproc_per_node 2 launch/train.py --config demo
    accelerate launch --num_processes 2 launch/train.py --config demo
    python launch/train.py --config denoise --set run.micro_batch=16 --set data.shards=/data/dfwb --dry-run

A rerun of the same command in the same run directory resumes from the last complete checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo", help="a YAML path or a name in launch/configs/ (default: demo)")
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
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
