"""launch/train.py as users call it: --dry-run, one-line errors for bad configs, nothing written on error."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    # a fresh single-process group: never inherit the rendezvous of an in-process Trainer test
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run([sys.executable, str(ROOT / "launch" / "train.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=env)


def test_dry_run_prints_config_and_deepspeed_json():
    p = run("--config", "denoise", "--dry-run", "--world-size", "8")
    assert p.returncode == 0, p.stderr
    ds = json.loads(p.stdout.split("# DeepSpeed config (world size 8)")[1])
    assert ds["train_batch_size"] == 192 and ds["train_micro_batch_size_per_gpu"] == 24
    assert ds["gradient_accumulation_steps"] == 1 and ds["bf16"]["enabled"]
    assert ds["data_types"]["grad_accum_dtype"] == "fp32"
    assert "lr: 0.0001" in p.stdout


@pytest.mark.parametrize("args, message", [
    (["--set", "run.foo=1"], "unknown config key 'run.foo'; valid keys in run:"),
    (["--set", "objective.mode=ours"], "objective mode must be one of baseline, daa, daa_ref"),
    (["--set", "run.micro_batch=five"], "run.micro_batch must be an integer"),
    (["--set", "run.precision=fp8"], "run.precision must be one of fp32, bf16, fp16"),
    (["--set", "model.restorer=unet3"], "unknown restorer 'unet3'"),
    (["--set", "model.restorer_args={wff: 3}"], "no option 'wff'"),
    (["--config", "nope"], "config 'nope' not found"),
    (["--set", "run.global_batch=10", "--dry-run", "--world-size", "3"], "not a multiple of micro_batch"),
    (["--set", "data.shards=/does/not/exist"], "/does/not/exist"),
    (["--set", "run"], "must look like section.key=value"),
])
def test_bad_input_is_one_line_error(tmp_path, args, message):
    run_dir = tmp_path / "run"
    p = run("--config", "demo", "--set", f"run.run_dir={run_dir}", "--set", "data.val=", *args)
    assert p.returncode == 2, (p.stdout[-2000:], p.stderr[-2000:])
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not run_dir.exists()  # nothing written on a bad config


def test_bf16_single_process_run(tmp_path):
    p = run("--config", "demo", "--set", f"run.run_dir={tmp_path}", "--set", "data.shards=synthetic",
            "--set", "data.val=", "--set", "data.patch_size=16", "--set", "run.precision=bf16",
            "--set", "model.restorer_args={depth: 2, wf: 8}", "--set", "run.total_images=32",
            "--set", "run.log_every_images=16", "--set", "run.global_batch=8", "--set", "run.micro_batch=8")
    assert p.returncode == 0, p.stderr[-3000:]
    stats = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert all(s["loss"] == s["loss"] for s in stats) and stats[-1]["images_seen"] == 32
    assert (tmp_path / "tensorboard").is_dir() and list((tmp_path / "tensorboard").iterdir())


def test_a_dead_loader_worker_is_one_line():
    """torchrun stops the other ranks (and their DataLoader workers) when one rank fails; the rank whose worker died
    reports one line, not a traceback (fault case "corrupt data: 100 %")."""
    from daa.config import load_config
    from daa.train import _known_failure

    cfg = load_config("demo")
    for text in ("DataLoader worker (pid(s) 7616) exited unexpectedly",
                 "DataLoader worker (pid 7616) is killed by signal: Terminated. "):
        msg = _known_failure(RuntimeError(text), cfg, in_fit=True)
        assert msg is not None and "DataLoader worker died" in msg and "resume" in msg and "\n" not in msg
    assert _known_failure(RuntimeError("shape mismatch"), cfg, in_fit=True) is None  # others keep their traceback


def test_sigusr1_prints_the_stacks_and_training_goes_on(tmp_path):
    """`kill -USR1` on daa-train: every thread's Python stack on stderr (where a hung rank waits), run unharmed."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    sets = ["run.run_dir=" + str(tmp_path), "data.shards=synthetic", "data.val=", "data.patch_size=16",
            "model.restorer_args={depth: 2, wf: 8}", "run.total_images=800", "run.log_every_images=16",
            "run.global_batch=8", "run.micro_batch=8", "run.tensorboard=false"]
    p = subprocess.Popen([sys.executable, str(ROOT / "launch" / "train.py"), "--config", "demo",
                          *[a for s in sets for a in ("--set", s)]], stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**env, "DAA_NO_TQDM": "1"})
    t0 = time.time()
    stats = tmp_path / "stats.jsonl"
    while not (stats.is_file() and stats.stat().st_size) and time.time() - t0 < 90 and p.poll() is None:
        time.sleep(0.1)
    assert p.poll() is None, "training ended before the signal"
    p.send_signal(signal.SIGUSR1)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    assert "most recent call first" in err and "in fit" in err and "in cli" in err
