"""The controls' tables (docs/results/controls.md + controls.json) from the runs of the plan's control studies.

Per study (validation first, then the merged test pools): every row's target and source PSNR (mean ± sample std over
the seeds done), and each row's difference to a reference row, paired by seed, with a 95 % photo × seed bootstrap
interval (crops stay with their photo; photos and seeds are drawn with replacement; the point estimate and every
draw weight crops equally, as the tables' means do). Nothing is trained or scored here: it reads the result files
daa_mini.py wrote (result_<split>.json, with per-crop PSNRs).

    python launch/studies/daa_mini_controls.py --out runs/controls --md docs/results/controls.md \\
        --json docs/results/controls.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from daa_mini_data import paths_only, result_path  # noqa: E402
from daa_mini_scoring import split_photos  # noqa: E402

STUDIES = ("camdark-controls-val", "camdark-controls")
COMPARISONS = (("daa", "baseline"), ("placebo", "baseline"), ("post-filter", "baseline"),
               ("official", "baseline"), ("official", "baseline-lr1e-4"), ("placebo", "daa"),
               ("post-filter", "daa"), ("official", "daa"))
"""(row, reference row): each control beside the baseline and beside DAA; the official arm also beside the baseline
trained at its learning rate."""


def _ms(xs: list[float]) -> tuple[float, float]:
    m = float(np.mean(xs))
    return m, float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")


def paired_bootstrap(a: dict[int, list[float]], b: dict[int, list[float]], photos: list[str], reps: int = 2000,
                     seed: int = 0) -> dict:
    """Row a − row b on the seeds both have: the crop-weighted mean difference, its per-seed values, and a 95 %
    interval from resampling photos (with all their crops) and seeds, both with replacement."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"seeds": []}
    names = sorted(set(photos))
    idx = np.array([names.index(p) for p in photos])
    d = np.array([np.asarray(a[s]) - np.asarray(b[s]) for s in seeds])  # seeds × crops
    sums = np.stack([np.bincount(idx, weights=row, minlength=len(names)) for row in d])  # seeds × photos
    counts = np.bincount(idx, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = np.empty(reps)
    for k in range(reps):
        ss = rng.integers(0, len(seeds), len(seeds))
        pp = rng.integers(0, len(names), len(names))
        draws[k] = sums[np.ix_(ss, pp)].sum() / (counts[pp].sum() * len(ss))
    per_seed = (sums.sum(1) / counts.sum()).tolist()
    lo, hi = np.percentile(draws, [2.5, 97.5]) if len(seeds) > 1 else (float("nan"), float("nan"))
    return {"seeds": seeds, "mean": float(np.mean(per_seed)), "per_seed": per_seed, "ci95": [float(lo), float(hi)],
            "photos": len(names)}


def collect(out: Path, data_root: Path, plan: Path) -> list[dict]:
    import daa_mini

    studies = {st.name: st for st in daa_mini.load_plan(plan)}
    tables = []
    for name in STUDIES:
        st = studies[name]
        paths = paths_only(st.task, data_root, daa_mini.SOURCE_TASK)
        photos = split_photos(paths[st.eval_split])
        rows, each, extra, missing = {}, {}, {}, []
        for arm in st.arms:
            res = {}
            for s in st.seeds:
                p = result_path(out, st.task, arm.name, s, st.eval_split)
                if p.is_file():
                    res[s] = json.loads(p.read_text())
            if not res:
                missing.append({"row": arm.row, "run": arm.name})
                continue
            rows[arm.row] = {"run": arm.name, "seeds": sorted(res), "target": _ms([r["target"]["psnr"] for r in
                                                                                 res.values()]),
                             "source": _ms([r["source"]["psnr"] for r in res.values()]),
                             "commits": sorted({r.get("commit") or "?" for r in res.values()}),
                             "train_s": [r.get("train_s", 0.0) for r in res.values()]}
            if arm.variant == "postfilter":
                rows[arm.row]["sigma_px"] = {s: r["sigma"] for s, r in res.items()}
            each[arm.row] = {s: r["target"]["psnr_each"] for s, r in res.items()}
            extra[arm.row] = {s: r["source"]["psnr"] for s, r in res.items()}
        diffs = {}
        for a, b in COMPARISONS:
            if a in each and b in each:
                d = paired_bootstrap(each[a], each[b], photos)
                if d["seeds"]:
                    src = [extra[a][s] - extra[b][s] for s in d["seeds"]]
                    diffs[f"{a} − {b}"] = {**d, "source": _ms(src)}
        tables.append({"study": name, "title": st.title, "split": st.eval_split, "seeds_planned": st.seeds,
                       "crops": len(photos), "photos": len(set(photos)), "rows": rows, "differences": diffs,
                       "not_run": missing})
    return tables


def _pm(m: float, s: float) -> str:
    return f"{m:.2f}" + ("" if math.isnan(s) else f" ± {s:.2f}")


def table_md(t: dict) -> str:
    lines = [f"### {t['title']}", "",
             f"`{t['study']}`, split `{t['split']}`: {t['crops']} crops of {t['photos']} photos; mean ± sample std "
             "over seeds.", "",
             "| row | run | seeds | target PSNR (dB) | source PSNR (dB) | note |", "|---|---|---|---|---|---|"]
    for row, r in t["rows"].items():
        note = ""
        if "sigma_px" in r:
            note = "σ chosen on validation: " + ", ".join(f"s{s} {v:g} px" for s, v in r["sigma_px"].items())
        lines.append(f"| {row} | `{r['run']}` | {','.join(map(str, r['seeds']))} | {_pm(*r['target'])} | "
                     f"{_pm(*r['source'])} | {note} |")
    for m in t.get("not_run", []):
        lines.append(f"| {m['row']} | `{m['run']}` | none | not run | not run | no seed finished |")
    lines += ["", "| difference | seeds | target Δ (dB), paired | per seed | 95 % interval (photo × seed bootstrap) | "
              "source Δ (dB) |", "|---|---|---|---|---|---|"]
    for k, d in t["differences"].items():
        ci = "–" if math.isnan(d["ci95"][0]) else f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
        lines.append(f"| {k} | {','.join(map(str, d['seeds']))} | {d['mean']:+.2f} | "
                     f"{' / '.join(f'{x:+.2f}' for x in d['per_seed'])} | {ci} | {d['source'][0]:+.2f} |")
    return "\n".join(lines)


MARKER = "<!-- below: generated by launch/studies/daa_mini_controls.py -->"


def write_md(path: Path, tables: str) -> None:
    """The tables after MARKER; what a person wrote above it (the reading of the tables) is kept."""
    lead = ""
    if path.is_file() and MARKER in (old := path.read_text()):
        lead = old.split(MARKER)[0]
    path.write_text(lead + MARKER + "\n\n" + tables)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/controls", help="the runs' folder (daa_mini.py --out)")
    p.add_argument("--data", default=".data", help="daa_mini.py --data (the scored splits' manifests)")
    p.add_argument("--plan", default=str(ROOT / "launch" / "studies" / "plans" / "daa_mini.yaml"))
    p.add_argument("--md", default=None, help="write the tables here")
    p.add_argument("--json", default=None, help="write the numbers here")
    a = p.parse_args(argv)
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    tables = collect(resolve(a.out), resolve(a.data) / "daa_mini2", resolve(a.plan))
    commits = sorted({c for t in tables for r in t["rows"].values() for c in r["commits"]})
    head = ["## Tables", "",
            "Generated by `python launch/studies/daa_mini_controls.py --md docs/results/controls.md --json "
            f"docs/results/controls.json` from the runs of `camdark-controls-val` and `camdark-controls` "
            f"(launch/studies/plans/daa_mini.yaml), made at commit(s) {', '.join(f'`{c}`' for c in commits)}.", ""]
    md = "\n".join(head + [table_md(t) + "\n" for t in tables])
    print(md)
    if a.md:
        write_md(resolve(a.md), md)
    if a.json:
        resolve(a.json).write_text(json.dumps({"commits": commits, "studies": tables}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
