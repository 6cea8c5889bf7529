"""The reliability suite: preemption (SIGKILL, SIGTERM, half-written checkpoints) and ranks that die, hang or
never join."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

from cases_data import write_shards
from faultlib import (
    PREEMPT,
    PY,
    ROOT,
    TINY,
    CaseFailed,
    Ctx,
    Row,
    _env,
    _port,
    _sets,
    check,
    children_by_rank,
    ckpt_state,
    error_lines,
    images_logged,
    killpg,
    run,
    same_weights,
    start,
    tail,
    train_cmd,
    wait_for,
    wait_or_fail,
)


# ---- 1. preemption --------------------------------------------------------------------------------------------------
def case_sigkill(ctx: Ctx, kill_seed: int, mid_checkpoint: bool) -> Row:
    ref = ctx.reference()
    d = ctx.tmp / f"sigkill{kill_seed}"
    total_steps = 320 // 8
    step = random.Random(ctx.seed * 1000 + kill_seed).randint(3, total_steps - 4)
    proc = start(train_cmd(d, *PREEMPT), ctx.tmp / f"sigkill{kill_seed}.log")
    if mid_checkpoint:  # SIGKILL while a checkpoint directory exists without its COMPLETE marker
        how = "SIGKILL to every rank + torchrun while a checkpoint is being written"
        # after the first checkpoint (24 img) is complete, while a later one is on its way
        hit = wait_for(lambda: images_logged(d) >= 32 and bool(ckpt_state(d)[1]), proc, 120, poll=0.002)
    else:
        how = f"SIGKILL to every rank + torchrun at step ≈{step} of {total_steps}"
        hit = wait_for(lambda: images_logged(d) >= step * 8, proc, 120)
    killpg(proc)
    proc.wait()
    check(hit, "the run ended before the kill could be delivered")
    at = images_logged(d)
    check("finished:" not in (d / "log.txt").read_text(), "the run had already finished when it was killed")
    complete, incomplete = ckpt_state(d)
    p = run(train_cmd(d, *PREEMPT))
    check(p.returncode == 0, f"rerun failed: {tail(p.stderr, 3)}")
    log = (d / "log.txt").read_text()
    m = re.findall(r"resumed from (step\d+)", log)
    check(bool(m), "the rerun did not resume from a checkpoint")
    check(m[-1] == complete[-1] if complete else False, f"resumed from {m[-1]}, newest complete was {complete}")
    warned = [t for t in incomplete if f"checkpoint {t} is incomplete" in log]
    check(len(warned) == len([t for t in incomplete if t > complete[-1]]), "an incomplete checkpoint was not reported")
    eq = all(same_weights(ref / "export" / f, d / "export" / f) for f in ("restorer.safetensors",
                                                                        "restorer_ema.safetensors"))
    check(eq, "final restorer weights differ from the uninterrupted run")
    half = f"; half-written {', '.join(incomplete)} skipped with a warning" if incomplete else ""
    return Row(f"preempt: SIGKILL{' mid-checkpoint' if mid_checkpoint else ''} (seed {kill_seed})",
               f"{how}; same command re-run",
               "resumes from the last COMPLETE checkpoint; final raw + EMA restorer bit-equal to an uninterrupted run",
               f"killed at {at} img; resumed from {m[-1]}{half}; weights bit-equal", True)


def case_sigterm(ctx: Ctx) -> Row:
    ref = ctx.reference()
    d = ctx.tmp / "sigterm"
    proc = start(train_cmd(d, *PREEMPT), ctx.tmp / "sigterm.log")
    hit = wait_for(lambda: images_logged(d) >= 56, proc, 120)
    t0 = time.time()
    for pid in children_by_rank(proc.pid).values():  # Slurm signals every task of the step
        os.kill(pid, signal.SIGTERM)
    wait_or_fail(proc, 60, "ranks still running 60 s after SIGTERM")
    dt = time.time() - t0
    check(hit, "the run ended before SIGTERM could be delivered")
    log = (d / "log.txt").read_text()
    m = re.search(r"SIGTERM: saved checkpoint (step\d+) at ([\d,]+) images", log)
    check(m is not None, "no checkpoint was saved on SIGTERM")
    complete, incomplete = ckpt_state(d)
    check(complete[-1] == m.group(1) and not incomplete, f"checkpoints after SIGTERM: {complete}, {incomplete}")
    check(proc.returncode == 0, f"exit status {proc.returncode} after SIGTERM: "
                                f"{tail((ctx.tmp / 'sigterm.log').read_text(), 2)}")
    p = run(train_cmd(d, *PREEMPT))
    check(p.returncode == 0, f"rerun failed: {tail(p.stderr, 3)}")
    check(f"resumed from {m.group(1)}" in (d / "log.txt").read_text(), "the rerun did not resume from it")
    check(same_weights(ref / "export" / "restorer_ema.safetensors", d / "export" / "restorer_ema.safetensors"),
          "final EMA weights differ from the uninterrupted run")
    return Row("preempt: SIGTERM (Slurm)", "SIGTERM to both ranks mid-run; same command re-run",
               "checkpoint at the next step boundary, clean exit; resume ends bit-equal",
               f"saved {m.group(1)} at {m.group(2)} img, exit 0 after {dt:.1f} s; resumed; EMA bit-equal", True)


def descendants(pid: int) -> list[int]:
    """pid and every process below it (a rank and its DataLoader workers)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                kids.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def case_sigterm_workers(ctx: Ctx) -> Row:
    """SIGTERM to every process of every rank, DataLoader workers included (what Slurm does to a job step on
    preemption, time limit or scancel, and torchrun's agent to its workers); real shards, one worker per rank."""
    shards = write_shards(ctx, "shards_term")
    d = ctx.tmp / "sigterm_workers"
    args = [f"data.shards={shards}", "data.num_workers=1", "run.total_images=160", "run.log_every_images=8",
            "run.ckpt_every_images=1000"]
    proc = start(train_cmd(d, *args), ctx.tmp / "sigterm_workers.log")
    hit = wait_for(lambda: images_logged(d) >= 40, proc, 120)
    pids = [q for r in children_by_rank(proc.pid).values() for q in descendants(r)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_or_fail(proc, 60, "ranks still running 60 s after SIGTERM")
    check(hit, "the run ended before SIGTERM could be delivered")
    out = (ctx.tmp / "sigterm_workers.log").read_text()
    check(proc.returncode == 0 and "Traceback" not in out, f"exit status {proc.returncode} after SIGTERM to every "
                                                           f"process: {tail(out, 2)}")
    m = re.search(r"SIGTERM: saved checkpoint (step\d+) at ([\d,]+) images", (d / "log.txt").read_text())
    check(m is not None, "no checkpoint was saved on SIGTERM")
    complete, incomplete = ckpt_state(d)
    check(complete[-1] == m.group(1) and not incomplete, f"checkpoints after SIGTERM: {complete}, {incomplete}")
    p = run(train_cmd(d, *args))
    log = (d / "log.txt").read_text()
    check(p.returncode == 0 and f"resumed from {m.group(1)}" in log and "finished: 160 images" in log,
          f"rerun did not resume and finish: {tail(p.stderr, 3)}")
    return Row("preempt: SIGTERM to every process (DataLoader workers)",
               f"real shards, 1 DataLoader worker per rank; SIGTERM to all {len(pids)} processes of the 2 ranks "
               "mid-run, as Slurm signals a job step; same command re-run",
               "checkpoint at the next step boundary, exit 0, no traceback; the rerun resumes and finishes",
               f"saved {m.group(1)} at {m.group(2)} img, exit 0; resumed, finished 160 img", True)


def case_half_written(ctx: Ctx) -> Row:
    """A checkpoint directory cut off by a crash (files, no marker) plus truncated files inside it."""
    ref = ctx.reference()
    d = ctx.tmp / "halfwritten"
    p = run(train_cmd(d, *PREEMPT[:1], "run.total_images=80", *PREEMPT[2:]))
    check(p.returncode == 0, f"first run failed: {tail(p.stderr, 3)}")
    complete, _ = ckpt_state(d)
    fake = d / "checkpoints" / "step000000999"
    fake.mkdir()
    src = d / "checkpoints" / complete[-1]
    for f in src.iterdir():
        if f.name != "COMPLETE":
            (fake / f.name).write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # truncated copies
    p = run(train_cmd(d, *PREEMPT))
    check(p.returncode == 0, f"rerun failed: {tail(p.stderr, 3)}")
    check("checkpoint step000000999 is incomplete" in (d / "log.txt").read_text(),
          "no warning about the half-written checkpoint")
    check(f"resumed from {complete[-1]}" in (d / "log.txt").read_text(), "did not resume from the complete one")
    check(same_weights(ref / "export" / "restorer_ema.safetensors", d / "export" / "restorer_ema.safetensors"),
          "final EMA weights differ from the uninterrupted run")
    return Row("preempt: half-written checkpoint", "newest checkpoint dir holds truncated files and no COMPLETE",
               "skipped with a warning; previous complete one used; result bit-equal",
               f"warned, resumed from {complete[-1]}, EMA bit-equal", True)


def case_accum_nan_resume(ctx: Ctx) -> Row:
    """grad_accum 2 on 2 ranks, a NaN batch on rank 1 (the 2nd micro-batch of step 2), SIGKILL after a later
    checkpoint, same command re-run: bit-equal to an uninterrupted run that met the same NaN batch, and DeepSpeed's
    micro-step counter a multiple of grad_accum at the end of both."""
    script = Path(__file__).with_name("numeric_worker.py")
    nan_at = [3]
    args = ["run.global_batch=16", "run.deterministic=true", "run.total_images=192", "run.log_every_images=16",
            "run.ckpt_every_images=32", "run.keep_checkpoints=2"]

    def cmd(d):
        return [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port()),
                str(script), "batch_nan", json.dumps(nan_at), *TINY, f"run.run_dir={d}", *args]

    ref, d = ctx.tmp / "accum_nan_ref", ctx.tmp / "accum_nan_cut"
    p = run(cmd(ref))
    check(p.returncode == 0, f"uninterrupted run failed: {tail(p.stderr, 3)}")
    proc = start(cmd(d), ctx.tmp / "accum_nan_cut.log")
    hit = wait_for(lambda: images_logged(d) >= 104, proc, 180)  # past the NaN and two checkpoints
    killpg(proc)
    proc.wait()
    check(hit, "the run ended before the kill could be delivered")
    at = images_logged(d)
    check("finished:" not in (d / "log.txt").read_text(), "the run had already finished when it was killed")
    p = run(cmd(d))
    check(p.returncode == 0, f"rerun failed: {tail(p.stderr, 3)}")
    m = re.findall(r"resumed from (step\d+)", (d / "log.txt").read_text())
    check(bool(m), "the rerun did not resume from a checkpoint")
    res = [json.loads((x / f"result{r}.json").read_text()) for x in (ref, d) for r in range(2)]
    eq = all(same_weights(ref / "export" / f, d / "export" / f) for f in ("restorer.safetensors",
                                                                          "restorer_ema.safetensors"))
    bad = [f"skipped_steps {[r['skipped'] for r in res]} (ref rank 0/1, resumed rank 0/1), expected 1"
           for _ in [0] if any(r["skipped"] != len(nan_at) for r in res)]
    bad += [f"DeepSpeed micro_steps {[r['ds_micro_steps'] for r in res]} not a multiple of grad_accum 2"
            for _ in [0] if any(r["accum"] != 2 or r["ds_micro_steps"] % 2 for r in res)]
    bad += ["final restorer weights differ from the uninterrupted run that met the same NaN batch"] if not eq else []
    check(not bad, "; ".join(bad))  # every symptom at once
    return Row("numeric: NaN batch under grad_accum 2, then SIGKILL",
               f"2 ranks, grad_accum 2, NaN in x_s on rank 1 at micro-batch {nan_at[0]}; SIGKILL to every rank + "
               "torchrun after 2 later checkpoints; same command re-run",
               "the NaN micro-batch is replaced (optimizer steps keep grad_accum finite micro-batches); DeepSpeed "
               "micro_steps % grad_accum = 0; final raw + EMA restorer bit-equal to an uninterrupted run",
               f"killed at {at} img; resumed from {m[-1]}; skipped_steps=1, micro_steps "
               f"{res[0]['ds_micro_steps']} (ref) / {res[2]['ds_micro_steps']} (resumed) after "
               f"{res[0]['ds_global_steps']} steps; weights bit-equal", True)


# ---- 2. one rank dies -----------------------------------------------------------------------------------------------
def _srun_like(ctx: Ctx, d: Path, name: str, timeout_min: float) -> list[subprocess.Popen]:
    """Two independent rank processes (as srun starts them: no agent that kills the survivors)."""
    port = _port()
    procs = []
    for r in range(2):
        env = _env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        cmd = [PY, str(ROOT / "launch" / "train.py"), "--config", "demo",
               *_sets(d, [*PREEMPT, f"run.dist_timeout_minutes={timeout_min}"])]
        procs.append(start(cmd, ctx.tmp / f"{name}_rank{r}.log", env=env))
    return procs


def case_rank_dies(ctx: Ctx, how: str) -> Row:
    d = ctx.tmp / f"rank_{how}"
    timeout_min = 0.25
    procs = _srun_like(ctx, d, f"rank_{how}", timeout_min)
    try:
        hit = wait_for(lambda: images_logged(d) >= 40, procs[0], 120)
        check(hit, "rank 0 ended before the fault")
        t0 = time.time()
        if how == "killed":
            procs[1].send_signal(signal.SIGKILL)
        else:
            procs[1].send_signal(signal.SIGSTOP)  # a hung rank: alive, never answers
        try:
            procs[0].wait(timeout=timeout_min * 60 + 60)
        except subprocess.TimeoutExpired:
            os.kill(procs[0].pid, signal.SIGUSR1)  # daa-train dumps its threads' stacks: where rank 0 waits
            time.sleep(2)
            log0 = (ctx.tmp / f"rank_{how}_rank0.log").read_text()
            where = [x.strip() for x in log0.splitlines() if x.strip().startswith("File ")][:6]
            raise CaseFailed(f"rank 0 still running {time.time() - t0:.0f} s after rank 1 {how}; "
                             f"its stack: {' <- '.join(where)}") from None
        dt = time.time() - t0
    finally:
        for p in procs:
            killpg(p)
            p.wait()
    out = (ctx.tmp / f"rank_{how}_rank0.log").read_text()
    errs = error_lines(out)
    check(procs[0].returncode not in (0, None), f"rank 0 exit status {procs[0].returncode}")
    check(len(errs) >= 1 and "Traceback" not in out, f"no one-line error from rank 0: {tail(out, 2)}")
    complete, _ = ckpt_state(d)
    p = run(train_cmd(d, *PREEMPT, f"run.dist_timeout_minutes={timeout_min}"))
    check(p.returncode == 0, f"restart failed: {tail(p.stderr, 3)}")
    check(f"resumed from {complete[-1]}" in (d / "log.txt").read_text(), "restart did not resume")
    fault = "SIGKILL" if how == "killed" else "SIGSTOP (hung)"
    return Row(f"rank dies: rank 1 {how}", f"2 srun-style ranks, dist_timeout 15 s; {fault} to rank 1 mid-run; "
               "restart with torchrun",
               "rank 0 exits non-zero with one error line within timeout + 60 s; restart resumes",
               f"rank 0 exit {procs[0].returncode} after {dt:.1f} s: \"{errs[0][:260]}\"; resumed from {complete[-1]}",
               True)


def case_rank_stalls(ctx: Ctx) -> Row:
    """Rank 1 blocks outside any collective (its data read never returns): no collective timeout can end it, the
    trainer's stall watchdog must (twice the timeout: 30 s here, at least timeout + 30 s = 45 s)."""
    d = ctx.tmp / "rank_stalls"
    timeout_min, step = 0.25, 12
    port = _port()
    procs = []
    for r in range(2):
        env = _env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        cmd = [PY, str(Path(__file__).with_name("stall_worker.py")), str(step), *TINY, f"run.run_dir={d}",
               *PREEMPT, f"run.dist_timeout_minutes={timeout_min}"]
        procs.append(start(cmd, ctx.tmp / f"rank_stalls_rank{r}.log", env=env))
    limit = 60 * timeout_min + max(60 * timeout_min, 30)
    try:
        hit = wait_for(lambda: (ctx.tmp / "rank_stalls_rank1.log").read_text().count("blocks at micro-step") > 0,
                       procs[1], 120)
        check(hit, "rank 1 ended before it stalled")
        t0 = time.time()
        for p in procs:
            try:
                p.wait(timeout=limit + 60)
            except subprocess.TimeoutExpired:
                raise CaseFailed(f"a rank still running {time.time() - t0:.0f} s after rank 1 stalled") from None
        dt = time.time() - t0
    finally:
        for p in procs:
            killpg(p)
            p.wait()
    logs = [(ctx.tmp / f"rank_stalls_rank{r}.log").read_text() for r in range(2)]
    errs = [error_lines(x) for x in logs]
    check(all(p.returncode == 3 for p in procs), f"exit statuses {[p.returncode for p in procs]}, expected 3 and 3")
    check(all(len(e) == 1 for e in errs) and not any("Traceback" in x for x in logs),
          f"not one error line per rank: {[tail(x, 2) for x in logs]}")
    check("no training progress" in errs[1][0], f"rank 1 did not report the stall: {errs[1][0][:160]}")
    complete, _ = ckpt_state(d)
    p = run(train_cmd(d, *PREEMPT, f"run.dist_timeout_minutes={timeout_min}"))
    check(p.returncode == 0, f"restart failed: {tail(p.stderr, 3)}")
    check(f"resumed from {complete[-1]}" in (d / "log.txt").read_text(), "restart did not resume")
    return Row("rank dies: rank 1 stalls outside collectives", "2 srun-style ranks, dist_timeout 15 s; rank 1's data "
               f"read blocks forever at micro-step {step} (no collective waits on it); restart with torchrun",
               f"both ranks exit non-zero with one error line each: rank 0 by the collective timeout, rank 1 by the "
               f"stall watchdog ({limit:.0f} s); restart resumes",
               f"both exit 3 within {dt:.1f} s; rank 0: \"{errs[0][0][:120]}\"; rank 1: \"{errs[1][0][:170]}\"; "
               f"resumed from {complete[-1]}", True)


def case_agent_kills(ctx: Ctx) -> Row:
    d = ctx.tmp / "rank_torchrun"
    proc = start(train_cmd(d, *PREEMPT), ctx.tmp / "rank_torchrun.log")
    hit = wait_for(lambda: images_logged(d) >= 40, proc, 120)
    t0 = time.time()
    ranks = children_by_rank(proc.pid)
    os.kill(ranks[1], signal.SIGKILL)
    wait_or_fail(proc, 90, "torchrun still running 90 s after a rank died")
    dt = time.time() - t0
    check(hit and proc.returncode != 0, f"torchrun exit status {proc.returncode}")
    complete, _ = ckpt_state(d)
    p = run(train_cmd(d, *PREEMPT))
    check(p.returncode == 0 and f"resumed from {complete[-1]}" in (d / "log.txt").read_text(), "restart failed")
    return Row("rank dies: under torchrun", "SIGKILL to rank 1 of a torchrun job; restart",
               "the job exits non-zero in bounded time; restart resumes",
               f"exit {proc.returncode} after {dt:.1f} s; resumed from {complete[-1]}", True)


PEER_JOINS_AND_DIES = ("import datetime, os, torch.distributed as dist; dist.init_process_group('gloo', "
                       "init_method='env://', timeout=datetime.timedelta(seconds=60)); os._exit(1)")


def case_startup_death(ctx: Ctx, how: str) -> Row:
    """Rank 1 dies during start-up, after the process group formed (it joins, then exits) or before it joins (it
    never starts): rank 0, started as srun starts it, must exit with one error line in bounded time."""
    d = ctx.tmp / f"startup_{how}"
    timeout_min = 0.25
    port = _port()
    env = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    cmd = [PY, str(ROOT / "launch" / "train.py"), "--config", "demo",
           *_sets(d, [*PREEMPT, f"run.dist_timeout_minutes={timeout_min}"])]
    log = ctx.tmp / f"startup_{how}_rank0.log"
    t0 = time.time()
    rank0 = start(cmd, log, env=_env(RANK="0", LOCAL_RANK="0", **env))
    peer = None
    if how == "joined":  # rank 1 forms the group with rank 0, then dies before training starts
        peer = subprocess.run([PY, "-c", PEER_JOINS_AND_DIES], env=_env(RANK="1", LOCAL_RANK="1", **env),
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    try:
        rank0.wait(timeout=timeout_min * 60 + 60)
    except subprocess.TimeoutExpired:
        killpg(rank0)
        rank0.wait()
        raise CaseFailed(f"rank 0 still running {time.time() - t0:.0f} s after rank 1 died in start-up") from None
    dt = time.time() - t0
    out = log.read_text()
    errs = error_lines(out)
    check(peer is None or peer.returncode == 1, f"the peer did not join and exit: {tail(peer.stderr if peer else '')}")
    check(rank0.returncode not in (0, None), f"rank 0 exit status {rank0.returncode}")
    check(len(errs) == 1 and "Traceback" not in out, f"no one-line error from rank 0: {tail(out, 2)}")
    check(not ckpt_state(d)[0], "a checkpoint was written")
    what = ("rank 1 joins the process group, then exits (os._exit) before training" if how == "joined"
            else "rank 1 never starts (rank 0 alone with WORLD_SIZE=2)")
    return Row(f"rank dies: during start-up ({'after joining' if how == 'joined' else 'never joins'})",
               f"2 srun-style ranks, dist_timeout 15 s; {what}",
               "rank 0 exits non-zero with one error line (no traceback) within timeout + 60 s",
               f"rank 0 exit {rank0.returncode} after {dt:.1f} s: \"{errs[0][:230]}\"", True)


