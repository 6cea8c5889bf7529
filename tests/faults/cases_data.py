"""The reliability suite: corrupt shard data and numerical faults (NaN/Inf inputs and losses)."""
from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from faultlib import (
    PY,
    TINY,
    CaseFailed,
    Ctx,
    Row,
    _port,
    all_finite,
    check,
    ckpt_state,
    error_lines,
    ranks_output,
    run,
    tail,
    train_cmd,
)


# ---- 3. corrupt data ------------------------------------------------------------------------------------------------
def _images(folder: Path, n: int, size: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.uniform(0, 255, (4, 4, 3))
        a = np.kron(base, np.ones((size // 4, size // 4, 1))) + rng.normal(0, 8, (size, size, 3))
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(folder / f"im{i:03d}.png")


def write_shards(ctx: Ctx, name: str, n: int = 48) -> Path:
    src = ctx.dir(f"{name}_src")
    _images(src / "gt", n, 32, 1)
    _images(src / "real", n, 32, 2)
    out = ctx.tmp / name
    p = run([PY, "-m", "data_shards.write", "--task", "denoise", "--gt", str(src / "gt"), "--syn-on-the-fly",
             "--real", str(src / "real"), "--out", str(out), "--maxcount", "12", "-q"])
    check(p.returncode == 0, f"data_shards.write failed: {tail(p.stderr)}")
    return out


def _png16_extreme() -> bytes:
    import numpy as np

    from data_shards.pngcrop import encode_png

    a = np.zeros((32, 32, 3), np.uint16)
    a[::2, ::2] = 65535
    return encode_png(a)


def _float_tiff() -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32), 1e30, np.float32), mode="F").save(buf, format="TIFF")
    return buf.getvalue()


CORRUPTIONS = {
    "bad PNG bytes": lambda data: data[:40] + os.urandom(len(data) - 40),
    "zero-size member": lambda data: b"",
    "wrong image mode (float TIFF)": lambda data: _float_tiff(),
    "16-bit extremes": lambda data: _png16_extreme(),
    "not an image": lambda data: b"hello, world\n" * 10,
}


def corrupt_shards(shards: Path, fraction: float, seed: int) -> dict[str, int]:
    """Rewrite the image members of `fraction` of the samples; the last real shard is also truncated."""
    man = json.loads((shards / "manifest.json").read_text())
    done = {k: 0 for k in CORRUPTIONS}
    kinds = list(CORRUPTIONS)
    files = [s["file"] for info in man["streams"].values() for s in info["shards"]]
    samples = []
    for f in files:
        with tarfile.open(shards / f) as tf:
            samples += [(f, k) for k in sorted({m.name.split(".", 1)[0] for m in tf.getmembers()})]
    # round(fraction · N) samples (at least one per kind), the kinds taken in turn
    n = len(samples) if fraction >= 1 else max(len(kinds), round(fraction * len(samples)))
    chosen = random.Random(seed).sample(samples, n)
    plan = {fk: (kinds[i % len(kinds)] if fraction < 1 else "bad PNG bytes") for i, fk in enumerate(chosen)}
    for f in files:
        path = shards / f
        with tarfile.open(path) as tf:
            members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
        pick = {k: kind for (ff, k), kind in plan.items() if ff == f}
        if pick:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as out:
                for m, data in members:
                    key = m.name.split(".", 1)[0]
                    if data is not None and key in pick and m.name.endswith(".png"):
                        data = CORRUPTIONS[pick[key]](data)
                        done[pick[key]] += 1
                        m.size = len(data)
                    out.addfile(m, io.BytesIO(data) if data is not None else None)
            path.write_bytes(buf.getvalue())
    if fraction < 1:
        last = shards / man["streams"]["real"]["shards"][-1]["file"]
        last.write_bytes(last.read_bytes()[: int(last.stat().st_size * 0.6)])
        done["truncated tar"] = 1
    return done


def case_corrupt_5(ctx: Ctx) -> Row:
    shards = write_shards(ctx, "shards5")
    done = corrupt_shards(shards, 0.05, ctx.seed)
    n_bad = sum(v for k, v in done.items() if k != "truncated tar")
    d = ctx.tmp / "corrupt5"
    p = run(train_cmd(d, f"data.shards={shards}", "data.num_workers=1", "run.total_images=96",
                      "run.log_every_images=32", "run.ckpt_every_images=96"))
    check(p.returncode == 0, f"training failed: {tail(p.stderr, 3)}")
    log = (d / "log.txt").read_text()
    m = re.search(r"finished: ([\d,]+) images, (\d+) skipped micro-steps, (\d+) skipped samples \(([^)]*)\)", log)
    check(m is not None, f"no skip count in the final log line: {tail(log)}")
    stats = [json.loads(x) for x in (d / "stats.jsonl").read_text().splitlines()]
    check(all(s.get("loss", 0) == s.get("loss", 0) for s in stats), "a NaN loss was logged")
    check(int(m.group(3)) > 0 and "skipped_samples" in stats[-1], "the skipped samples were not counted/logged")
    what = ", ".join(f"{v} {k}" for k, v in done.items() if v)
    return Row("corrupt data: 5 %", f"{n_bad} of 96 samples (5 %) rewritten: {what}; 2 ranks train",
               "training completes; skips counted, logged (stats.jsonl) and reported at the end; no NaN loss",
               f"completed, final line: \"{m.group(3)} skipped samples ({m.group(4)})\", skipped_steps={m.group(2)}",
               True)


def case_corrupt_100(ctx: Ctx) -> Row:
    shards = write_shards(ctx, "shards100", n=24)
    corrupt_shards(shards, 1.0, ctx.seed)
    d = ctx.tmp / "corrupt100"
    t0 = time.time()
    try:
        p = run(train_cmd(d, f"data.shards={shards}", "data.num_workers=1", "run.total_images=96"), timeout=120)
    except subprocess.TimeoutExpired:
        raise CaseFailed("still running (spinning) after 120 s") from None
    dt = time.time() - t0
    errs = error_lines(p.stderr)
    check(p.returncode != 0 and errs, f"exit {p.returncode}, no error line: {tail(p.stderr, 2)}")
    # torchrun's ChildFailedError traceback follows when the agent stops the other rank before it prints its line
    check(all("Traceback" not in x for x in ranks_output(p.stderr).split("error:")[1:2]),
          "traceback next to the error")
    return Row("corrupt data: 100 %", "every image member of every shard is garbage; 2 ranks train",
               "stops with a one-line error instead of spinning",
               f"exit {p.returncode} after {dt:.0f} s: \"{errs[0][:220]}\"", True)


# ---- 4. numerical faults --------------------------------------------------------------------------------------------


def case_numeric(ctx: Ctx, where: str, restorer: str = "unet") -> Row:
    d = ctx.tmp / f"num_{where}_{restorer}"
    script = Path(__file__).with_name("numeric_worker.py")
    steps = [3, 7]
    args = ["run.total_images=96", "run.log_every_images=16", "run.ckpt_every_images=48"]
    if restorer == "dncnn":  # BatchNorm: a forward pass on a NaN batch would poison the running statistics
        args += ["model.restorer=dncnn", "model.restorer_args={num_of_layers: 4, features: 8}"]
    p = run([PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port()),
             str(script), where, json.dumps(steps), *TINY, f"run.run_dir={d}", *args])
    check(p.returncode == 0, f"run failed: {tail(p.stderr, 3)}")
    res = [json.loads((d / f"result{r}.json").read_text()) for r in range(2) if (d / f"result{r}.json").is_file()]
    check(len(res) == 2, "no result from the ranks")
    check(all(r["skipped"] == len(steps) for r in res), f"skipped_steps {[r['skipped'] for r in res]}, "
                                                        f"expected {len(steps)} on both ranks")
    check(all(r["finite"] for r in res), "non-finite weights, EMA (incl. buffers) or optimizer state after the run")
    complete, _ = ckpt_state(d)
    import torch

    ck = d / "checkpoints" / complete[-1]
    for f in ck.glob("*.pt"):
        bad = _nonfinite(torch.load(f, map_location="cpu", weights_only=False))
        check(not bad, f"non-finite tensors in checkpoint {f.name}: {bad[:3]}")
    check(all_finite(d / "export" / "restorer_ema.safetensors") and all_finite(d / "export" / "restorer.safetensors"),
          "non-finite export")
    what = {"batch_nan": "NaN in x_s", "batch_inf": "Inf in x_s", "loss_inf": "Inf loss"}[where]
    return Row(f"numeric: {what}{' (BatchNorm restorer)' if restorer == 'dncnn' else ''}",
               f"{what} on rank 1 at micro-steps {steps} of 12; 2 ranks, {restorer}",
               "step skipped on all ranks and counted; weights, EMA (+buffers), Adam state, checkpoint, export finite",
               f"skipped_steps={res[0]['skipped']} on both ranks; all finite", True)


def _nonfinite(x, path="") -> list[str]:
    import torch

    if torch.is_tensor(x):
        return [path] if x.is_floating_point() and not bool(torch.isfinite(x).all()) else []
    if isinstance(x, dict):
        return [b for k, v in x.items() for b in _nonfinite(v, f"{path}.{k}")]
    if isinstance(x, (list, tuple)):
        return [b for i, v in enumerate(x) for b in _nonfinite(v, f"{path}[{i}]")]
    return []




# ---- 3b. shards over HTTP that misbehave -------------------------------------------------------------------------
def case_http(ctx: Ctx) -> Row:
    """2 ranks train from shards served over HTTP on 127.0.0.1: one shard's first two downloads break half-way,
    another answers 404. The run completes; the retries and the missing shard are counted and reported."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import shard_server

    shards = write_shards(ctx, "shards_http")
    man = json.loads((shards / "manifest.json").read_text())
    syn, real = man["streams"]["syn"]["shards"], man["streams"]["real"]["shards"]
    srv = shard_server.start(str(shards))
    try:
        srv.drop[syn[0]["file"]] = 2
        srv.missing.add(real[-1]["file"])
        d = ctx.tmp / "http"
        p = run(train_cmd(d, f"data.shards={srv.url}", "data.num_workers=1", "run.total_images=96",
                          "run.log_every_images=32", "run.ckpt_every_images=96"))
    finally:
        srv.shutdown()
    check(p.returncode == 0, f"training failed: {tail(p.stderr, 3)}")
    log = (d / "log.txt").read_text()
    m = re.search(r"finished: ([\d,]+) images, \d+ skipped micro-steps, \d+ skipped samples \(([^)]*)\)", log)
    check(m is not None, f"no final report line: {tail(log)}")
    counts = dict(kv.split("=") for kv in m.group(2).split(", ") if "=" in kv)
    check(int(counts.get("missing_shards", 0)) >= 1, f"the 404 shard was not counted: {m.group(2)}")
    check(int(counts.get("read_retries", 0)) >= 1, f"the dropped downloads were not retried/counted: {m.group(2)}")
    check(int(counts.get("unreachable_shards", 0)) == 0, f"a shard was given up: {m.group(2)}")
    return Row("corrupt data: shards over HTTP", f"2 ranks read shards from http://127.0.0.1 (data.shards=URL); the "
               f"first 2 downloads of {syn[0]['file']} cut half-way, {real[-1]['file']} answers 404",
               "training completes; the cut downloads are retried, the 404 shard skipped; both counted and reported",
               f"completed {m.group(1)} images; final line: \"{m.group(2)}\"", True)
