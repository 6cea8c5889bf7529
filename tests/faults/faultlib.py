"""The reliability suite's shared pieces: process helpers for launching and killing real multi-rank runs, the
summary row and table, and the per-session context (temporary tree, the uninterrupted reference run)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daa.training.distributed import free_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
TINY = ["model.restorer_args={depth: 2, wf: 16}", "data.shards=synthetic", "data.val=", "data.patch_size=16",
        "run.tensorboard=false", "run.global_batch=8", "run.micro_batch=4", "optim.lr=2e-3",
        "objective.alpha_ramp_images=200", "run.ema_half_life_images=100", "run.zero_stage=2"]
# the preemption runs: 2 ranks, one optimizer step = 8 images, a checkpoint every 2 steps, deterministic
PREEMPT = ["run.deterministic=true", "run.total_images=320", "run.log_every_images=8", "run.ckpt_every_images=24",
           "run.keep_checkpoints=2"]
LAUNCH_TIMEOUT = 240


@dataclass
class Row:
    case: str
    done: str
    expected: str
    observed: str
    held: bool


class CaseFailed(AssertionError):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise CaseFailed(what)


# ---- process helpers ------------------------------------------------------------------------------------------------
def _port() -> int:
    return free_port()


def _env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "DAA_NO_TQDM": "1", "PYTHONWARNINGS": "ignore",
            "PYTHONUNBUFFERED": "1", **extra}


def _sets(run_dir, overrides) -> list[str]:
    return [a for o in TINY + [f"run.run_dir={run_dir}"] + list(overrides) for a in ("--set", o)]


def train_cmd(run_dir, *overrides, nproc: int = 2, script: list[str] | None = None) -> list[str]:
    body = script or [str(ROOT / "launch" / "train.py"), "--config", "demo", *_sets(run_dir, overrides)]
    if nproc == 1:
        return [PY, *body]
    return [PY, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(_port()), *body]


RETRIES: list[str] = []
"""Launches retried once because the launcher itself failed to start (see `run`); listed under the table."""
_START_FAILURES = ("Signal 6 (SIGABRT)", "EADDRINUSE", "address already in use")


def run(cmd, timeout=LAUNCH_TIMEOUT, **kw) -> subprocess.CompletedProcess:
    env = kw.pop("env", _env())
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)
    if p.returncode != 0:
        with open(Path(tempfile.gettempdir()) / "daa_faults_failed_launches.log", "a") as f:  # for diagnosis
            f.write(f"\n===== {' '.join(cmd)}\n{p.stderr[-20000:]}\n")
        # on this shared 2-core box a torchrun start occasionally dies in rendezvous (a port taken between
        # _port() and bind, a gloo abort): one retry on a fresh port, counted in the summary, never silent
        if "--master_port" in cmd and any(s in p.stderr for s in _START_FAILURES):
            cmd = list(cmd)
            cmd[cmd.index("--master_port") + 1] = str(_port())
            RETRIES.append(f"{_describe(cmd)[:80]}… ({next(s for s in _START_FAILURES if s in p.stderr)})")
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)
    return p


def start(cmd, log: Path, env=None) -> subprocess.Popen:
    f = open(log, "w")
    return subprocess.Popen(cmd, env=env or _env(), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)  # its own process group: killpg reaches every rank


def images_logged(run_dir: Path) -> int:
    p = run_dir / "stats.jsonl"
    try:
        lines = p.read_text().splitlines()
    except OSError:
        return 0
    vals = [json.loads(x).get("images_seen", 0) for x in lines if x.strip().endswith("}")]
    return max(vals) if vals else 0


def wait_for(pred, proc: subprocess.Popen, timeout: float, poll: float = 0.01) -> bool:
    t = time.time()
    while time.time() - t < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def wait_or_fail(proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Wait for `proc`; past `timeout` s kill its process group and fail the case with `what`."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        killpg(proc)
        raise CaseFailed(what) from None


def killpg(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    """`sig` to a launched command: its process group and torchrun's workers (which run in sessions of their own)."""
    pids = list(children_by_rank(proc.pid).values())
    for kill, pid in [(os.killpg, proc.pid)] + [(os.kill, p) for p in pids]:
        try:
            kill(pid, sig)
        except ProcessLookupError:
            pass


def children_by_rank(pid: int) -> dict[int, int]:
    """Worker pids of a torchrun agent, by their RANK environment variable."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text().split("\0") if "=" in kv)
            if "RANK" in env:
                out[int(env["RANK"])] = int(d.name)
        except (OSError, ValueError, IndexError):
            continue
    return out


def ckpt_state(run_dir: Path) -> tuple[list[str], list[str]]:
    """(complete, incomplete) checkpoint tags."""
    root = run_dir / "checkpoints"
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step")) if root.is_dir() else []
    done = [p.name for p in dirs if (p / "COMPLETE").is_file()]
    return done, [p.name for p in dirs if p.name not in done]


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def all_finite(path: Path) -> bool:
    import torch

    return all(bool(torch.isfinite(v).all()) for v in weights(path).values())


def tree_digest(path: Path) -> str:
    """sha256 over every file (name + bytes) under path: 'nothing the user had is modified'."""
    h = hashlib.sha256()
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    for p in sorted(path.rglob("*")) if path.exists() else []:
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def error_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith("error:")]


_AGENT_TRACEBACK = 'Traceback (most recent call last):\n  File "<frozen runpy>"'


def ranks_output(stderr: str) -> str:
    """What the ranks printed: stderr without torchrun's own report of a failed child (a ChildFailedError traceback
    it prints whenever a rank exits non-zero). A rank's traceback is prefixed `[rankN]:` and has no runpy frame."""
    if "ChildFailedError" not in stderr:
        return stderr
    return stderr.split(_AGENT_TRACEBACK)[0]


def tail(text: str, n: int = 1) -> str:
    errs = error_lines(text)
    lines = errs or [x for x in text.strip().splitlines() if x.strip()]
    return " / ".join(lines[-n:])[:160]


# ---- shared state ---------------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, tmp: Path, quick: bool, seed: int):
        self.tmp, self.quick, self.seed = tmp, quick, seed
        self._reference: Path | None = None

    def dir(self, name: str) -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def reference(self) -> Path:
        """An uninterrupted deterministic run of PREEMPT: the weights every interrupted run must end with."""
        if self._reference is None:
            d = self.tmp / "reference"
            p = run(train_cmd(d, *PREEMPT))
            check(p.returncode == 0, f"uninterrupted reference run failed: {tail(p.stderr, 3)}")
            self._reference = d
        return self._reference


def _short(x: str) -> str:
    """Paths of the temporary tree shown relative to it (`$T/...`), the checkout's relative to the repo."""
    x = re.sub(re.escape(tempfile.gettempdir()) + r"/daa_faults_[^/\s]+", "$T", x)
    return x.replace(str(ROOT) + "/", "")


def _describe(cmd: list[str]) -> str:
    """The command as a user would type it, without the tiny-model overrides every case shares."""
    out, skip = [], False
    for i, a in enumerate(cmd):
        if skip:
            skip = False
            continue
        if a == "--set" and i + 1 < len(cmd) and cmd[i + 1] in TINY:
            skip = True
            continue
        if a == PY:
            out.append("python")
        elif a == "--master_port":
            skip = True
        else:
            out.append(_short(a))
    return " ".join(out).replace("python -m torch.distributed.run", "torchrun")



def table(rows: list[Row]) -> str:
    def esc(s):
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| case | what was done | expected | observed | held? |", "|---|---|---|---|---|"]
    lines += [f"| {esc(r.case)} | {esc(r.done)} | {esc(r.expected)} | {esc(r.observed)} | "
              f"{'yes' if r.held else '**NO**'} |" for r in rows]
    return "\n".join(lines)


