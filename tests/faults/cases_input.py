"""The reliability suite: bad input to every CLI, and a disk that fills up during a checkpoint write."""
from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from faultlib import (
    LAUNCH_TIMEOUT,
    PREEMPT,
    PY,
    ROOT,
    Ctx,
    Row,
    _describe,
    _env,
    _port,
    _sets,
    _short,
    check,
    ckpt_state,
    error_lines,
    ranks_output,
    run,
    tail,
    train_cmd,
    tree_digest,
)


# ---- 5. bad input ---------------------------------------------------------------------------------------------------
@dataclass
class Bad:
    name: str
    cmd: list[str]
    expect: str  # a substring of the one error line
    guard: list[Path] | None = None  # paths whose content must not change
    absent: Path | None = None  # must not be created
    empty_ok: bool = False  # `absent` may be created as an empty folder (nothing half-written in it)
    env: dict | None = None
    setup: object = None


def _train_args(run_dir, *overrides) -> list[str]:
    return [PY, str(ROOT / "launch" / "train.py"), "--config", "demo", *_sets(run_dir, overrides)]


def _tiff(a) -> bytes:
    """An uncompressed TIFF with any number of 8-bit samples per pixel (image codecs refuse to write 5)."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, a, photometric="minisblack", planarconfig="contig")
    return buf.getvalue()


def bad_input_cases(ctx: Ctx) -> list[Bad]:
    import numpy as np

    from data_shards.imageio import write_png

    b = ctx.dir("bad")
    imgs = b / "imgs"
    imgs.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(imgs / f"a{i}.png", rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    small = b / "small"
    small.mkdir(exist_ok=True)
    write_png(small / "a0.png", rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    write_png(small / "a1.png", rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    junk = b / "junk"
    junk.mkdir(exist_ok=True)
    (junk / "a0.png").write_bytes(b"not a png")
    (junk / "a1.png").write_bytes(b"")
    chans = b / "chans"
    chans.mkdir(exist_ok=True)
    (chans / "a0.tiff").write_bytes(_tiff(rng.integers(0, 255, (8, 8, 5), dtype=np.uint8)))
    (b / "not_weights.safetensors").write_bytes(b"\x00" * 64)
    # a trained run (its export and a run dir that already holds results)
    run_ok = ctx.reference()
    export = run_ok / "export" / "restorer_ema.safetensors"
    other = b / "other_arch.safetensors"
    from safetensors.torch import load_file, save_file

    meta = {"daa": json.dumps({"format": 1, "restorer": "unet", "preset": "default", "args": {"depth": 2, "wf": 8},
                               "value_range": [0, 1], "task": "denoise"})}
    save_file(load_file(str(export)), str(other), metadata=meta)
    outdir = b / "restored"
    outdir.mkdir(exist_ok=True)
    (outdir / "a0.png").write_bytes((imgs / "a0.png").read_bytes())
    shards_out = b / "shards_out"
    shards_out.mkdir(exist_ok=True)
    (shards_out / "manifest.json").write_text("{}")
    hashdir = b / "hashrun"
    if not hashdir.exists():  # a run dir whose checkpoints come from a run with another config
        hashdir.mkdir()
        import shutil

        shutil.copytree(run_ok / "checkpoints", hashdir / "checkpoints")
    ro = b / "broken.yaml"
    ro.write_text("run: {total_images: 8\n  model: [\n")
    t = _train_args
    R = [PY, "-m", "daa.restore"]
    E = [PY, "-m", "daa.evaluate"]
    W = [PY, "-m", "data_shards.write"]
    K = [PY, "-m", "launch.bench.kernels", "--quick", "--csv", ""]
    nr = b / "never"
    return [
        Bad("train: config file missing", [PY, str(ROOT / "launch/train.py"), "--config", str(b / "nope.yaml")],
            "not found", absent=nr),
        Bad("train: config not valid YAML", [PY, str(ROOT / "launch/train.py"), "--config", str(ro),
                                             "--set", f"run.run_dir={nr}"], "not valid YAML", absent=nr),
        Bad("train: unknown config key", t(nr, "run.foo=1"), "unknown config key 'run.foo'", absent=nr),
        Bad("train: unknown value", t(nr, "objective.mode=ours"), "objective mode must be one of", absent=nr),
        Bad("train: wrong type", t(nr, "run.micro_batch=five"), "run.micro_batch must be an integer", absent=nr),
        Bad("train: world size vs batch", t(nr, "run.global_batch=10") + ["--dry-run", "--world-size", "3"],
            "not a multiple of micro_batch", absent=nr),
        Bad("train: world size vs batch (torchrun)", [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                                      "--master_port", str(_port())]
            + t(nr, "run.global_batch=6", "run.micro_batch=2")[1:], "not a multiple of micro_batch", absent=nr),
        Bad("train: missing shard dir", t(nr, "data.shards=/does/not/exist"), "/does/not/exist", absent=nr),
        Bad("train: missing val dir", t(nr, "data.val=/does/not/val"), "/does/not/val", absent=nr),
        Bad("train: wrong channel count", t(nr, "model.restorer_args={depth: 2, wf: 16, in_channels: 4}"),
            "in_channels", absent=nr),
        Bad("train: run dir holds another config", t(run_ok, *PREEMPT, "optim.lr=1e-2"),
            "holds a run with a different config", guard=[run_ok]),
        Bad("train: checkpoint of another config", t(hashdir, *PREEMPT, "run.seed=5"),
            "written by a different config", guard=[hashdir / "checkpoints"]),
        Bad("write: missing input folder", W + ["--task", "denoise", "--gt", str(b / "nope"), "--syn-on-the-fly",
                                                "--out", str(b / "w1")], "nope", absent=b / "w1"),
        Bad("write: unknown task", W + ["--task", "dehaze", "--gt", str(imgs), "--out", str(b / "w2")],
            "unknown task", absent=b / "w2"),
        Bad("write: output holds results", W + ["--task", "denoise", "--gt", str(imgs), "--syn-on-the-fly",
                                                "--out", str(shards_out)], "not empty", guard=[shards_out]),
        Bad("write: undecodable images", W + ["--task", "denoise", "--gt", str(junk), "--syn-on-the-fly",
                                              "--out", str(b / "w3")], "a0.png", absent=b / "w3", empty_ok=True),
        Bad("restore: weights missing", R + ["--weights", str(b / "nope.safetensors"), "--input", str(imgs),
                                             "--output", str(b / "r1")], "not found", absent=b / "r1"),
        Bad("restore: weights not safetensors", R + ["--weights", str(b / "not_weights.safetensors"), "--input",
                                                     str(imgs), "--output", str(b / "r2")], "not a readable",
            absent=b / "r2"),
        Bad("restore: other architecture", R + ["--weights", str(other), "--input", str(imgs), "--output",
                                                str(b / "r3")], "do not match", absent=b / "r3"),
        Bad("restore: input missing", R + ["--weights", str(export), "--input", str(b / "nope"), "--output",
                                           str(b / "r4")], "not found", absent=b / "r4"),
        Bad("restore: output holds results", R + ["--weights", str(export), "--input", str(imgs), "--output",
                                                  str(outdir)], "already exists", guard=[outdir]),
        Bad("restore: wrong channel count", R + ["--weights", str(export), "--input", str(chans), "--output",
                                                 str(b / "r5")], "a0.tiff: unsupported channel count 5",
            absent=b / "r5"),
        Bad("restore: bad tile size", R + ["--weights", str(export), "--input", str(imgs), "--output", str(b / "r6"),
                                           "--tile", "8"], "--tile", absent=b / "r6"),
        Bad("evaluate: pred folder missing", E + ["--pred", str(b / "nope"), "--gt", str(imgs)], "not found"),
        Bad("evaluate: size mismatch", E + ["--pred", str(small), "--gt", str(imgs)], "differ in size"),
        Bad("evaluate: csv not writable", E + ["--pred", str(imgs), "--gt", str(imgs), "--csv",
                                               str(b / "nodir" / "x.csv")], "x.csv", absent=b / "nodir"),
        Bad("bench: unknown op", K + ["--ops", "conv"], "conv"),
        Bad("bench: unknown dtype", K + ["--dtypes", "fp8"], "fp8"),
    ]


def case_bad_input(ctx: Ctx, quick: bool) -> list[Row]:
    rows = []
    cases = bad_input_cases(ctx)
    if quick:
        cases = cases[::3]
    for c in cases:
        before = {p: tree_digest(p) for p in c.guard or []}
        try:
            p = run(c.cmd, timeout=120, env=_env(**(c.env or {})))
            errs = list(dict.fromkeys(error_lines(p.stderr)))  # torchrun: the same line from every rank
            own = ranks_output(p.stderr)
            problems = []
            if p.returncode == 0:
                problems.append("exit 0")
            if len(errs) != 1 or c.expect not in errs[0]:
                problems.append(f"error lines {errs[:2] or tail(p.stderr, 2)!r}")
            if "Traceback" in own:
                problems.append("traceback")
            changed = [str(q) for q in before if tree_digest(q) != before[q]]
            if changed:
                problems.append(f"modified {changed}")
            if c.absent is not None and c.absent.exists() and not (c.empty_ok and not any(c.absent.iterdir())):
                problems.append(f"created {c.absent}")
            obs = f"exit {p.returncode}: \"{_short(errs[0] if errs else tail(p.stderr))[:150]}\""
            rows.append(Row(f"bad input: {c.name}", _describe(c.cmd),
                            f"exit ≠ 0, one error line naming '{c.expect}', nothing modified",
                            obs + (f" — {'; '.join(problems)}" if problems else ""), not problems))
        except Exception as e:  # noqa: BLE001
            rows.append(Row(f"bad input: {c.name}", "", "", f"{type(e).__name__}: {e}", False))
    return rows


def case_disk_full(ctx: Ctx) -> Row:
    """Checkpoint write fails (file-size limit: EFBIG, as ENOSPC would): one-line error, previous checkpoint and
    exports untouched, the next run resumes from the previous checkpoint."""
    d = ctx.tmp / "diskfull"
    args = ["run.deterministic=true", "run.log_every_images=8", "run.ckpt_every_images=32"]
    p = run(train_cmd(d, *args, "run.total_images=32", nproc=1))
    check(p.returncode == 0, f"first run failed: {tail(p.stderr, 3)}")
    exports = tree_digest(d / "export")
    complete0, _ = ckpt_state(d)

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # no file may grow past 1 MiB

    p = subprocess.run(train_cmd(d, *args, "run.total_images=64", nproc=1), env=_env(), capture_output=True,
                       text=True, timeout=LAUNCH_TIMEOUT, cwd=ROOT, preexec_fn=limit)
    errs, rc = error_lines(p.stderr), p.returncode
    check(rc != 0, "exit 0 although the checkpoint could not be written")
    check(len(errs) == 1 and "Traceback" not in p.stderr, f"no one-line error: {tail(p.stderr, 2)}")
    complete1, incomplete = ckpt_state(d)
    check(complete1 == complete0, f"complete checkpoints changed: {complete0} → {complete1}")
    check(tree_digest(d / "export") == exports, "the exports were modified")
    p = run(train_cmd(d, *args, "run.total_images=64", nproc=1))
    check(p.returncode == 0 and f"resumed from {complete0[-1]}" in (d / "log.txt").read_text(), "no resume after")
    return Row("bad input: disk full on checkpoint write", "file-size limit 1 MiB (EFBIG) during the 2nd checkpoint",
               "one error line, exit ≠ 0; previous checkpoint + exports untouched; rerun resumes",
               f"exit {rc}: \"{_short(errs[0])[:150]}\"; {complete0[-1]} kept, exports unchanged, resumed", True)


