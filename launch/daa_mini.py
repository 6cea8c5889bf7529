"""DAA-mini: does adaptation through the diffusion loss beat synthetic-only training, at CPU scale? (`make reproduce`)

Per task it builds the data once (cached under --data), trains every (variant, seed) with the same restorer-update
budget through this project's own trainer (launch/train.py, config launch/configs/daa_mini.yaml), evaluates the EMA
restorer on the held-out target test split and on the source test split, and writes tables, bar plots and verdicts.

Tasks (design: shared/notes/data.md §3, kept in docs/RESULTS.md):
- polyu: denoising with REAL camera noise. Source = AWGN on the corpus's pool-S photos; unpaired real = PolyU noisy
  images of half of the scenes; test = the PolyU pairs of the other scenes (split by scene, fixed: sorted scene
  names, odd positions are test). The oracle trains on the unpaired scenes' (noisy, mean) pairs. Needs --polyu DIR.
- noise / rain / blur: the corpus's realistic synthetic targets (Brooks camera noise, multi-layer screen-blended
  rain, camera shake in linear light): pool S → source pairs, pool U → unpaired target inputs (oracle: their pairs),
  pool E → the fixed textured-crop test split.

Variants: input (no training), baseline (source pairs only), daa, no-tricks (daa without channel shuffling and
residual-swap negatives), cs-only (channel shuffling only), daa_ref (diffusion target = unpaired clean references),
oracle (the same restorer trained on target pairs).

Every run caches its checkpoint and result (runs/daa_mini/<task>/<variant>/s<seed>/result.json): a rerun trains only
what is missing and continues an interrupted run from its checkpoint, so the study can be split across sessions.
`--quick` is a CI smoke test (one small task, two variants, a few steps).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daa_mini_data import Task, digest, log, paths_only, polyu_split, prepare_data, sh  # noqa: E402

__all__ = ["polyu_split"]  # re-exported: the PolyU scene split is part of this study's interface

VARIANTS: dict[str, list[str]] = {
    "baseline": ["objective.mode=baseline"],
    "daa": ["objective.mode=daa"],
    "no-tricks": ["objective.mode=daa", "objective.channel_shuffle=false", "objective.residual_swap=false"],
    "cs-only": ["objective.mode=daa", "objective.residual_swap=false"],
    "detach-neg": ["objective.mode=daa", "objective.detach_negatives=true"],
    "daa_ref": ["objective.mode=daa_ref"],
    "oracle": ["objective.mode=baseline"],  # + the oracle shards
}
ALL_VARIANTS = list(VARIANTS)
MAIN_VARIANTS = ["baseline", "daa", "oracle"]


SOURCE_TASK = "noise"
"""The corpus denoising task whose AWGN source splits the polyu task borrows."""
TASKS = {
    # the ablations where the oracle gap is largest (rain); the other tasks: baseline / daa / oracle (budget ~2 h)
    "camnoise": Task("denoise", "Denoising, camera noise calibrated on real sRGB noise", tuple(MAIN_VARIANTS),
                     profile="sidd"),
    "polyu": Task("denoise", "Denoising, real camera noise (PolyU)", tuple(MAIN_VARIANTS)),
    "rain": Task("derain", "Deraining, realistic rain target", tuple(ALL_VARIANTS), y_metric=True),
    "noise": Task("denoise", "Denoising, realistic camera-noise target", tuple(MAIN_VARIANTS)),
    "blur": Task("deblur", "Deblurring, camera-shake target", tuple(MAIN_VARIANTS)),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------------
# one (task, variant, seed) run: train (resumable) → evaluate → result.json
# ----------------------------------------------------------------------------------------------------------------------
def run_overrides(task: str, variant: str, seed: int, paths: dict[str, Path], run_dir: Path, extra: list[str]):
    t = TASKS[task]
    shards = paths["oracle"] if variant == "oracle" else paths["shards"]
    return [*VARIANTS[variant], f"data.task={t.task}", f"data.shards={shards}", f"run.run_dir={run_dir}",
            f"run.seed={seed}", *extra]


def config_digest(sets: list[str]) -> str:
    """Identity of a run's resolved training config (launch/configs/daa_mini.yaml + overrides; the run folder
    excluded): a cached result counts only while its digest matches."""
    import dataclasses
    import hashlib

    from daa.config import load_config

    d = dataclasses.asdict(load_config("daa_mini", sets))
    d["run"].pop("run_dir", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_run(run_dir: Path, sets: list[str], threads: int) -> float:
    """Train (or resume) one run; returns its training seconds (recorded in run_dir/done)."""
    done = run_dir / "done"
    if (run_dir / "export" / "restorer_ema.safetensors").is_file() and done.is_file():
        return float(done.read_text().strip() or 0)
    t0 = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS=str(threads), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
               LOCAL_RANK="0", WORLD_SIZE="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "launch/train.py", "--config", "daa_mini", *[a for s in sets for a in ("--set", s)]]
    with open(run_dir / "train.log", "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = (run_dir / "train.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"training {run_dir} failed (exit {rc}): {tail[0] if tail else ''} — see train.log")
    secs = round(time.time() - t0, 1)
    done.write_text(f"{secs}\n")
    return secs


_EVAL_LOCK = threading.Lock()
PSNR_CAP = 60.0
"""Per-image PSNR is capped here: a source-test crop drawn with σ≈0 is its own clean image (PSNR = ∞), which would
make the input row's mean infinite. 60 dB is above what a 1-LSB error in every 8-bit pixel gives (58.9 dB)."""


def _psnr(pred, target):
    import numpy as np

    from daa import metrics

    return np.minimum(metrics.psnr(pred, target), PSNR_CAP)


def evaluate_split(net, meta, split: Path, domain: str, y_metric: bool) -> dict:
    import numpy as np

    from daa import metrics
    from daa.training.evaluation import restore_batches
    from data_shards.valset import load_valset

    x, y = load_valset(str(split), domain=domain)
    r = restore_batches(net, x, tuple(meta["value_range"]), "cpu", batch=8).clamp(0, 1)
    out = {"psnr": _psnr(r, y).tolist(), "ssim": metrics.ssim(r, y).tolist()}
    if y_metric:
        out["psnr_y"] = metrics.psnr_y(r, y).tolist()
    return {k: float(np.mean(v)) for k, v in out.items()} | {"psnr_each": out["psnr"], "n": len(x)}


def evaluate_run(run_dir: Path, paths: dict[str, Path], task: str, split: str) -> dict:
    import torch

    from daa.export import load_restorer

    with _EVAL_LOCK:  # evaluation is short; one at a time keeps the training slot's core free
        torch.set_num_threads(1)
        net, meta = load_restorer(run_dir / "export" / "restorer_ema.safetensors")
        with torch.no_grad():
            return {"target": evaluate_split(net, meta, paths[split], "target", TASKS[task].y_metric),
                    "source": evaluate_split(net, meta, paths[f"source_{split}"], "source", TASKS[task].y_metric)}


def input_result(paths: dict[str, Path], task: str, split: str = "test") -> dict:
    import numpy as np

    from daa import metrics
    from data_shards.valset import load_valset

    res = {}
    for key, sp, domain in (("target", paths[split], "target"), ("source", paths[f"source_{split}"], "source")):
        x, y = load_valset(str(sp), domain=domain)
        d = {"psnr": float(np.mean(_psnr(x, y))), "ssim": float(np.mean(metrics.ssim(x, y))), "n": len(x)}
        if TASKS[task].y_metric:
            d["psnr_y"] = float(np.mean(metrics.psnr_y(x, y)))
        res[key] = d
    return res


def result_path(out: Path, task: str, variant: str, seed: int, split: str) -> Path:
    """The test split's result is result.json (what `make reproduce` reports); the validation's result_val.json."""
    return out / task / variant / f"s{seed}" / ("result.json" if split == "test" else f"result_{split}.json")


def one_run(out: Path, task: str, variant: str, seed: int, paths: dict[str, Path], extra: list[str],
            threads: int, split: str = "test") -> dict:
    """Train (or reuse) one run and score it on `split` ('val' or 'test'). A cached result counts only while its
    training config and training data are unchanged; if only the evaluation split changed, it is re-scored."""
    run_dir = out / task / variant / f"s{seed}"
    res_path = result_path(out, task, variant, seed, split)
    sets = run_overrides(task, variant, seed, paths, run_dir, extra)
    cfg_digest = config_digest(sets)
    data_digest = digest(paths["oracle"] if variant == "oracle" else paths["shards"])
    eval_digest = digest(paths[split], paths[f"source_{split}"])
    res = json.loads(res_path.read_text()) if res_path.is_file() else None
    if res is not None:
        if res.get("config_digest") != cfg_digest or res.get("data_digest", data_digest) != data_digest:
            raise RuntimeError(f"{run_dir} holds a result of another training config or training data (the YAML, "
                               "--set or the shards changed); use another --out, or move that folder away to "
                               "retrain it")
        if res.get("eval_digest") == eval_digest:
            return res
    train_s = train_run(run_dir, sets, threads)
    res = {"task": task, "variant": variant, "seed": seed, "split": split, "overrides": sets,
           "config_digest": cfg_digest, "data_digest": data_digest, "eval_digest": eval_digest,
           "commit": git_commit(), **evaluate_run(run_dir, paths, task, split), "train_s": train_s}
    res_path.write_text(json.dumps(res, indent=1))
    log(f"{task}/{variant}/s{seed} [{split}]: target {res['target']['psnr']:.2f} dB, source "
        f"{res['source']['psnr']:.2f} dB ({res['train_s']:.0f} s)")
    return res


def git_commit() -> str | None:
    """The commit the runs are made from (with '+dirty' when the tree has changes), recorded in every result."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# ----------------------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------------------
def _ms(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, s


def summarize(task: str, inputs: dict, results: list[dict], split: str = "test") -> dict:
    rows = {"input": {"target": (inputs["target"]["psnr"], 0.0), "target_ssim": inputs["target"]["ssim"],
                      "source": (inputs["source"]["psnr"], 0.0), "n": 0}}
    if TASKS[task].y_metric:
        rows["input"]["target_y"] = (inputs["target"]["psnr_y"], 0.0)
    for v in ALL_VARIANTS:
        rs = [r for r in results if r["variant"] == v]
        if not rs:
            continue
        rows[v] = {"target": _ms([r["target"]["psnr"] for r in rs]),
                   "target_ssim": sum(r["target"]["ssim"] for r in rs) / len(rs),
                   "source": _ms([r["source"]["psnr"] for r in rs]), "n": len(rs),
                   "seeds": sorted(r["seed"] for r in rs),
                   "train_s": sum(r.get("train_s", 0) for r in rs)}
        if TASKS[task].y_metric:
            rows[v]["target_y"] = _ms([r["target"]["psnr_y"] for r in rs])
    v = verdict(rows)
    if split != "test" and v["status"] != "incomplete":
        v["status"] = "validation split: no verdict"  # verdicts are read on the test split only
    return {"task": task, "title": TASKS[task].title, "split": split, "rows": rows, "verdict": v}


def verdict(rows: dict) -> dict:
    """Issue #6's rule: daa − baseline ≥ +0.3 dB and ≥ 2× the pooled seed std; daa ≤ oracle + 0.1; source loss ≤ 0.5."""
    if "daa" not in rows or "baseline" not in rows:
        return {"status": "incomplete"}
    (md, sd), (mb, sb) = rows["daa"]["target"], rows["baseline"]["target"]
    gain = md - mb
    pooled = math.sqrt((sd ** 2 + sb ** 2) / 2) if rows["daa"]["n"] > 1 and rows["baseline"]["n"] > 1 else float("nan")
    v = {"gain_db": gain, "pooled_std": pooled, "seeds": min(rows["daa"]["n"], rows["baseline"]["n"])}
    v["gain_ok"] = gain >= 0.3 and (not math.isnan(pooled) and gain >= 2 * pooled)
    v["source_loss_db"] = rows["baseline"]["source"][0] - rows["daa"]["source"][0]
    v["source_ok"] = v["source_loss_db"] <= 0.5
    if "oracle" in rows:
        v["oracle_gap_db"] = rows["oracle"]["target"][0] - mb
        v["below_oracle_ok"] = md <= rows["oracle"]["target"][0] + 0.1
    v["status"] = ("reproduced" if v["gain_ok"] and v["source_ok"] and v.get("below_oracle_ok", True)
                   else "not reproduced") if v["seeds"] >= 3 else f"preliminary ({v['seeds']} seed(s))"
    return v


def table_md(s: dict) -> str:
    y = "target_y" in s["rows"]["input"]
    head = "| | target PSNR (dB) | target SSIM |" + (" target PSNR-Y |" if y else "") + " source PSNR (dB) | seeds |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in s["rows"].items():
        f = lambda ms: f"{ms[0]:.2f}" + (f" ± {ms[1]:.2f}" if name != "input" and not math.isnan(ms[1]) else "")  # noqa
        lines.append(f"| {name} | {f(r['target'])} | {r['target_ssim']:.4f} |" + (f" {f(r['target_y'])} |" if y else "")
                     + f" {f(r['source'])} | {r['n'] or '–'} |")
    v = s["verdict"]
    if v.get("status") != "incomplete":
        lines.append("")
        std = "no std from 1 seed" if math.isnan(v["pooled_std"]) else f"pooled seed std {v['pooled_std']:.2f}"
        lines.append(f"daa − baseline: **{v['gain_db']:+.2f} dB** ({std}); "
                     + (f"oracle − baseline {v['oracle_gap_db']:+.2f} dB; " if "oracle_gap_db" in v else "")
                     + f"source-{s.get('split', 'test')} change {-v['source_loss_db']:+.2f} dB → **{v['status']}**")
    return "\n".join(lines)


def bar_plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(s["rows"])
    means = [s["rows"][n]["target"][0] for n in names]
    stds = [0 if n == "input" or math.isnan(s["rows"][n]["target"][1]) else s["rows"][n]["target"][1] for n in names]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 3.4))
    colors = ["#999999" if n == "input" else "#1f77b4" if n in ("baseline", "oracle") else "#d62728" for n in names]
    ax.bar(names, means, yerr=stds, capsize=4, color=colors)
    lo = min(means) - 1.0
    ax.set_ylim(lo, max(m + e for m, e in zip(means, stds)) + 0.5)
    for i, m in enumerate(means):
        ax.text(i, m + 0.05, f"{m:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"PSNR on the target {s.get('split', 'test')} split (dB)")
    ax.set_title(s["title"] + " — mean ± std over seeds")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(out: Path, summaries: list[dict], report_dir: Path | None, split: str = "test") -> None:
    """Tables, plots and summary.json of one split (validation files carry a _val suffix)."""
    sfx = "" if split == "test" else f"_{split}"
    md = []
    for s in summaries:
        md += [f"### {s['title']} (`{s['task']}`, {split} split)", "", table_md(s), ""]
        for d in (out, report_dir) if report_dir is not None else (out,):
            bar_plot(s, d / f"{s['task']}{sfx}.png")
    text = "\n".join(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"summary{sfx}.md").write_text(text)
    (out / f"summary{sfx}.json").write_text(json.dumps(summaries, indent=1))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"tables{sfx}.md").write_text(text)
        (report_dir / f"summary{sfx}.json").write_text(json.dumps(summaries, indent=1))
    print("\n" + text, flush=True)


# ----------------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=None, help="comma list of " + ", ".join(TASKS) + " (default: all available)")
    p.add_argument("--variants", default=None, help="comma list (default: each task's plan); any of "
                   + ", ".join(ALL_VARIANTS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--polyu", default=str(ROOT.parent / "shared" / "data" / "real_noise_polyu"),
                   help="PolyU real-noise pairs (*_real.JPG / *_mean.JPG); task polyu is skipped when missing")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="score the runs on the validation split (choosing a config) or the test split (once per "
                        "final config); a run trained for one is reused for the other")
    p.add_argument("--data", default=".data", help="photo corpus at DATA/photos, DAA-mini data at DATA/daa_mini2")
    p.add_argument("--out", default="runs/daa_mini")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (one process each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra trainer overrides for every run (changes the runs' identity: use a new --out)")
    p.add_argument("--report-dir", default=None, help="also write tables.md, summary.json and plots here")
    p.add_argument("--report-only", action="store_true", help="summarize the finished runs, train nothing")
    p.add_argument("--quick", action="store_true", help="CI smoke test: task noise, baseline + daa, 1 seed, tiny")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    data, out = resolve(a.data), resolve(a.out)
    polyu = Path(a.polyu) if a.polyu and Path(a.polyu).is_dir() else None
    if a.quick:
        a.tasks, a.variants, a.seeds = a.tasks or "noise", a.variants or "baseline,daa", "0"
        if a.out == "runs/daa_mini":
            out = ROOT / "runs" / "daa_mini_quick"
        a.extra = ["run.total_images=64", "objective.alpha_ramp_images=64", "run.ckpt_every_images=32",
                   "run.log_every_images=16", "run.eval_every_images=64", "data.patch_size=32", *a.extra]
    tasks = a.tasks.split(",") if a.tasks else [t for t in TASKS if t != "polyu" or polyu is not None]
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"error: unknown task {t!r}; choose from {', '.join(TASKS)}")
    if "polyu" in tasks and polyu is None:
        raise SystemExit(f"error: task polyu needs the PolyU pairs: --polyu {a.polyu} is not a folder")
    variants = a.variants.split(",") if a.variants else None
    for v in variants or []:
        if v not in VARIANTS:
            raise SystemExit(f"error: unknown variant {v!r}; choose from {', '.join(ALL_VARIANTS)}")
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds must be a comma list of integers, got {a.seeds!r}") from None
    # daa_mini2: the corpus has a validation pool V since issue #12, so data written before lives elsewhere
    data_root = data / ("daa_mini_quick2" if a.quick else "daa_mini2")
    # --quick: a small pool-P-only corpus of its own (no apt, seconds to build); the study uses the full corpus
    photos = data_root / "photos" if a.quick else data / "photos"
    t0 = time.time()
    if not a.report_only:
        sh([sys.executable, "-m", "data_shards.photos", "--out", photos,
            *(["--no-apt", "--max-side", "256"] if a.quick else [])])
    paths = {t: prepare_data(t, TASKS[t], data_root, photos, polyu, a.quick, SOURCE_TASK) if not a.report_only
             else paths_only(t, data_root, SOURCE_TASK) for t in tasks}
    jobs = [(t, v, s) for t in tasks for v in (variants or TASKS[t].variants) for s in seeds]
    results: list[dict] = []
    if not a.report_only:
        todo = sum(not (out / t / v / f"s{s}" / "done").is_file() for t, v, s in jobs)
        log(f"{len(jobs)} runs ({todo} to train), scored on the {a.split} split, {a.jobs} at a time")
        failures = []
        with ThreadPoolExecutor(a.jobs) as pool:
            futs = {pool.submit(one_run, out, t, v, s, paths[t], a.extra, a.threads, a.split): (t, v, s)
                    for t, v, s in jobs}
            for f, key in futs.items():
                try:
                    results.append(f.result())
                except Exception as e:  # noqa: BLE001 - report every failed run, keep the others
                    failures.append(f"{'/'.join(map(str, key))}: {e}")
        for msg in failures:
            log(f"FAILED {msg}")
    else:
        for t, v, s in jobs:
            p = result_path(out, t, v, s, a.split)
            if p.is_file():
                results.append(json.loads(p.read_text()))
    summaries = [summarize(t, input_result(paths[t], t, a.split), [r for r in results if r["task"] == t], a.split)
                 for t in tasks]
    report(out, summaries, resolve(a.report_dir) if a.report_dir else None, a.split)
    log(f"DAA-mini done in {time.time() - t0:.0f} s (results in {out})")
    return 1 if not a.report_only and len(results) < len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
