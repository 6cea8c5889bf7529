"""Multi-process training on CPU: 2 ranks over gloo through the real launchers, ZeRO 1/2/3, exact resume."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.restorer_args={depth: 2, wf: 16}", "data.shards=synthetic", "data.val=", "data.patch_size=16",
        "run.tensorboard=false", "run.global_batch=8", "run.micro_batch=4", "optim.lr=2e-3",
        "objective.alpha_ramp_images=200", "run.ema_half_life_images=100"]


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_dir, *overrides, launcher="torchrun", timeout=300):
    sets = [a for o in TINY + [f"run.run_dir={run_dir}"] + list(overrides) for a in ("--set", o)]
    script = [str(ROOT / "launch" / "train.py"), "--config", "demo", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DAA_NO_TQDM": "1", "TMPDIR": str(run_dir.parent),
           "PYTHONWARNINGS": "ignore"}
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_port()), *script]
    elif launcher == "accelerate":  # `--multi_gpu` is accelerate's name for "N processes + torch.distributed"
        cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_port()), *script]
    else:  # the deepspeed launcher, as users run it
        cmd = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", str(_port()),
               *script]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return [json.loads(x) for x in (Path(run_dir) / "stats.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_two_rank_zero_training_loss_falls(tmp_path, stage):
    stats = launch(tmp_path / "run", f"run.zero_stage={stage}", "run.total_images=320",
                   "run.log_every_images=32", "run.ckpt_every_images=320")
    losses = [s["loss"] for s in stats if "loss" in s]
    assert losses[-1] < 0.7 * losses[0], losses
    assert (tmp_path / "run" / "export" / "restorer_ema.safetensors").is_file()
    ds = json.loads((tmp_path / "run" / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == stage and ds["gradient_accumulation_steps"] == 1  # 8 = 4 × 1 × 2


def test_two_rank_restart_resumes_exactly(tmp_path):
    """Run to checkpoint N and stop; the same command with a larger budget resumes from N and logs the same losses
    as an uninterrupted run (deterministic mode), with the deepspeed launcher."""
    common = ["run.deterministic=true", "run.log_every_images=16", "run.ckpt_every_images=32"]
    full = launch(tmp_path / "full", *common, "run.total_images=64", launcher="deepspeed")
    launch(tmp_path / "cut", *common, "run.total_images=32", launcher="deepspeed")
    resumed = launch(tmp_path / "cut", *common, "run.total_images=64", launcher="deepspeed")
    key = lambda s: [(r["images_seen"], r["loss"]) for r in s if "loss" in r]  # noqa: E731
    assert key(resumed) == key(full)
    assert "resumed from step" in (tmp_path / "cut" / "log.txt").read_text()


def test_accelerate_launch_forms_one_two_rank_group(tmp_path):
    stats = launch(tmp_path / "run", "run.total_images=64", "run.log_every_images=32", launcher="accelerate")
    assert stats[-1]["images_seen"] == 64
    assert "world=2 " in (tmp_path / "run" / "log.txt").read_text()
