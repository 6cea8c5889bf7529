"""The reliability suite's elastic-resume cases: a run checkpointed on N ranks continues on M ≠ N ranks."""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

from faultlib import PY, TINY, Ctx, Row, _port, check, run, tail, tree_digest

# one optimizer step = 8 images; baseline mode: no random draw in the loss, so the same batches give the same
# losses on any number of ranks (up to the order of float sums)
ELASTIC = ["objective.mode=baseline", "run.deterministic=true", "run.total_images=64", "run.log_every_images=8",
           "run.ckpt_every_images=32", "run.keep_checkpoints=3"]
CUT = 32
LOSS_RTOL = 1e-5
"""Relative tolerance of the losses after an elastic resume against the uninterrupted run on the same batches. The
maths is the same; only the order of float sums differs (gradients averaged by the all-reduce over ranks instead of
accumulated over micro-steps on one rank), a difference of a few fp32 ulps (~1e-7 relative) per step that the next
steps can grow; 1e-5 leaves room for that and still fails on any real difference (a lost Adam moment or step count
moves the next loss by > 1e-3)."""


def _cmd(nproc: int, mode: str, name: str, d: Path, stage: int) -> list[str]:
    script = Path(__file__).with_name("elastic_worker.py")
    body = [str(script), mode, name, *TINY, f"run.run_dir={d}", *ELASTIC, f"run.zero_stage={stage}"]
    if nproc == 1:
        return [PY, *body]
    return [PY, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(_port()), *body]


def _losses(d: Path) -> dict[int, float]:
    return {r["images_seen"]: r["loss"] for r in map(json.loads, (d / "stats.jsonl").read_text().splitlines())
            if "loss" in r}


def _max_delta(a: dict, b: dict) -> dict[str, float]:
    out = {"weights": 0.0, "exp_avg": 0.0, "exp_avg_sq": 0.0, "ema": 0.0}
    check(a["params"].keys() == b["params"].keys(), "the loaded model has other parameters")
    for n in a["params"]:
        for k, x, y in zip(("weights", "exp_avg", "exp_avg_sq"), a["params"][n], b["params"][n]):
            check(x.shape == y.shape, f"{n} {k}: shape {tuple(y.shape)} ≠ {tuple(x.shape)}")
            out[k] = max(out[k], (x - y).abs().max().item())
    for k, v in a["ema"].items():
        if v.is_floating_point():
            out["ema"] = max(out["ema"], (v - b["ema"][k]).abs().max().item())
    return out


def case_elastic(ctx: Ctx, stage: int, w_from: int, w_to: int) -> Row:
    import torch

    base, d = ctx.tmp / f"elastic_z{stage}_{w_from}", ctx.tmp / f"elastic_z{stage}_{w_from}to{w_to}"
    if not (base / "saved.pt").is_file():  # the uninterrupted run on w_from ranks, shared by the cases that need it
        p = run(_cmd(w_from, f"train:{CUT}", "saved", base, stage))
        check(p.returncode == 0, f"uninterrupted run on {w_from} rank(s) failed: {tail(p.stderr, 3)}")
    # the run as it was at the checkpoint after CUT images: later checkpoints and log records removed
    shutil.copytree(base, d, ignore=shutil.ignore_patterns("stats.jsonl", "log.txt", "saved.pt", "export"))
    tags = sorted(p.name for p in (d / "checkpoints").iterdir() if p.name.startswith("step"))
    cut = f"step{CUT // 8:09d}"
    for t in tags:
        if t > cut:
            shutil.rmtree(d / "checkpoints" / t)
    before = tree_digest(d / "checkpoints" / cut)
    p = run(_cmd(w_to, "resume", "loaded", d, stage))
    check(p.returncode == 0, f"resume on {w_to} rank(s) failed: {tail(p.stderr, 3)}")
    log = (d / "log.txt").read_text()
    m = re.search(r"elastic resume: (step\d+) was written by (\d+) rank\(s\), continuing on (\d+) with grad_accum "
                  r"(\d+) \(([^)]*)\)", log)
    check(m is not None and m.group(1) == cut, f"no elastic resume from {cut} in the log")
    check(tree_digest(d / "checkpoints" / cut) == before, "the original checkpoint was modified")
    conv = re.search(r"made in ([\d.]+) s, ([\d.]+) MiB", m.group(5))
    saved = torch.load(base / "saved.pt", weights_only=False)
    loaded = torch.load(d / "loaded.pt", weights_only=False)
    delta = _max_delta(saved, loaded)
    worst = max(delta.values())
    check(worst == 0.0, f"loaded state differs from the saved one: max |Δ| {delta}")
    check((loaded["images_seen"], loaded["micro_step"], loaded["global_steps"]) ==
          (saved["images_seen"], saved["micro_step"], saved["global_steps"]), "image / step counters not carried")
    ref, got = _losses(base), _losses(d)
    after = sorted(k for k in ref if k > CUT)
    check(sorted(got) == after, f"logged images {sorted(got)}, expected {after}")
    rel = max(abs(got[k] - ref[k]) / abs(ref[k]) for k in after)
    check(all(math.isfinite(got[k]) for k in after), "non-finite loss after the resume")
    check(rel <= LOSS_RTOL, f"losses after the resume differ from the uninterrupted run by {rel:.2e} (relative)")
    accum = (saved["accum"], loaded["accum"])
    how = f"conversion {conv.group(1)} s, +{conv.group(2)} MiB" if conv else m.group(5)
    return Row(f"elastic: ZeRO-{stage}, {w_from} → {w_to} rank(s)",
               f"checkpoint after {CUT} img on {w_from} rank(s) (grad_accum {accum[0]}); same command on "
               f"{w_to} rank(s)",
               "fp32 master weights, Adam moments, EMA bit-equal right after loading; image/step counters carried; "
               f"the next {len(after)} steps' losses = the uninterrupted run's on the same batches (rtol "
               f"{LOSS_RTOL:g}); original checkpoint untouched",
               f"grad_accum {accum[0]} → {accum[1]}; max |Δ| loaded state {worst:g}; loss max rel. Δ {rel:.1e}; "
               f"{how}", True)


def case_elastic_shards(ctx: Ctx) -> Row:
    """Real shards through launch/train.py: 2 ranks stop mid-epoch, 1 rank continues. The one new reader must first
    read exactly the samples the two old readers had not consumed, then start the next epoch: its final cursor
    tells (epoch 1, samples of epoch 1) = (1, images it consumed − the old readers' unread rest)."""
    import torch
    from cases_data import write_shards
    from faultlib import train_cmd

    shards = write_shards(ctx, "shards_elastic")  # 48 samples per stream in 4 shards: 24 per reader on 2 ranks
    d = ctx.tmp / "elastic_shards"
    args = [f"data.shards={shards}", "data.num_workers=1", "run.log_every_images=16", "run.ckpt_every_images=32"]
    p = run(train_cmd(d, *args, "run.total_images=32"))
    check(p.returncode == 0, f"2-rank run failed: {tail(p.stderr, 3)}")
    old = [torch.load(d / "checkpoints" / "step000000004" / f"trainer_rank{r}.pt", weights_only=False)["stream"]
           for r in range(2)]
    unread = {s: sum(24 - w["cursors"][s][1] for st in old for w in st["workers"] if w["cursors"][s][0] == 0)
              for s in ("syn", "real")}
    check(all(st["workers"][0]["cursors"]["syn"][0] == 0 for st in old), "the 2-rank run left epoch 0 already")
    p = run(train_cmd(d, *args, "run.total_images=96", nproc=1))
    check(p.returncode == 0, f"1-rank resume failed: {tail(p.stderr, 3)}")
    log = (d / "log.txt").read_text()
    m = re.search(r"data stream resharded from 2 to 1 rank\(s\): ([^\n]*)", log)
    check(m is not None and "resharded_repeats=0" in m.group(1) and "resharded_skips=0" in m.group(1),
          f"no reshard line with zero repeats and skips: {m.group(1) if m else None}")
    check("finished: 96 images" in log, "the resumed run did not finish")
    last = sorted(p.name for p in (d / "checkpoints").iterdir() if (p / "COMPLETE").is_file())[-1]
    new = torch.load(d / "checkpoints" / last / "trainer_rank0.pt", weights_only=False)["stream"]
    cur = {s: tuple(new["workers"][0]["cursors"][s]) for s in ("syn", "real")}
    want = {s: (1, 96 - 32 - unread[s]) for s in ("syn", "real")}
    check(cur == want, f"final cursors {cur}, expected {want}: samples repeated or lost")
    return Row("elastic: real shards, 2 → 1 rank(s)",
               "shards (4 per stream), 1 DataLoader worker per rank; 2 ranks stop at 32 img mid-epoch; "
               "launch/train.py on 1 rank continues to 96 img",
               "the new reader reads exactly the old readers' unread rest of the epoch, then epoch 1; log "
               "resharded_repeats=0 resharded_skips=0",
               f"unread rest {unread['syn']} (syn) / {unread['real']} (real) samples; final cursors {cur} = expected; "
               f"log: {m.group(1)}", True)
