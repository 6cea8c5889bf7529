"""Train a DAA restorer. The same script runs under every launcher:

    python launch/train.py --config demo                          # one process (CPU or one GPU)
    deepspeed --num_gpus 8 launch/train.py --config denoise       # OMP_NUM_THREADS=1 on CPU
    torchrun --nproc_per_node 2 launch/train.py --config demo
    accelerate launch --multi_gpu --num_processes 2 launch/train.py --config demo   # also on CPU
    python launch/train.py --config denoise --set run.micro_batch=16 --set data.shards=/data/dfwb --dry-run

A rerun of the same command in the same run directory resumes from the last complete checkpoint.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from daa.train import cli, main  # noqa: E402,F401  (main: for callers that import this script)

if __name__ == "__main__":
    cli()
