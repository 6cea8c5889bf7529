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
from daa_mini_stats import photo_seed_interval  # noqa: E402

STUDIES = ("camdark-controls-val", "camdark-controls")
COMPARISONS = (("daa", "baseline"), ("placebo", "baseline"), ("post-filter", "baseline"),
               ("official", "baseline"), ("official", "baseline-lr1e-4"), ("placebo", "daa"),
               ("post-filter", "daa"), ("official", "daa"))
"""(row, reference row): each control beside the baseline and beside DAA; the official arm also beside the baseline
trained at its learning rate."""


def _ms(xs: list[float]) -> tuple[float, float]:
    m = float(np.mean(xs))
    return m, float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")


def paired_bootstrap(a: dict[int, list[float]], b: dict[int, list[float]], photos: list[str]) -> dict:
    """Row a − row b on the seeds both have: the crop-weighted mean difference, its per-seed values, and the 95 %
    photo × seed bootstrap interval of the headline table (daa_mini_stats.photo_seed_interval: photos, with all their
    crops, and seeds drawn with replacement)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"seeds": []}
    names = sorted(set(photos))
    idx = np.array([names.index(p) for p in photos])
    counts = np.bincount(idx, minlength=len(names)).astype(float)
    d = np.array([np.asarray(a[s]) - np.asarray(b[s]) for s in seeds])  # seeds × crops
    per_photo = np.stack([np.bincount(idx, weights=row, minlength=len(names)) for row in d]) / counts  # seeds × photos
    per_seed = (per_photo @ counts / counts.sum()).tolist()
    lo, hi = photo_seed_interval(per_photo.T, counts) if len(seeds) > 1 else (float("nan"), float("nan"))
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


def sign(d: dict | None) -> str:
    """'+' / '−' when the 95 % interval lies above / below 0, '0' when it holds 0, '?' without an interval."""
    if not d or not d.get("seeds") or math.isnan(d["ci95"][0]):
        return "?"
    lo, hi = d["ci95"]
    return "+" if lo > 0 else "−" if hi < 0 else "0"


def reading(row: str, diffs: dict) -> str:
    """What a control shows, by the reading rules written before any control was scored (docs/results/controls.md):
    a difference counts only when its 95 % interval excludes 0."""
    g = lambda a, b: sign(diffs.get(f"{a} − {b}"))  # noqa: E731
    daa = g("daa", "baseline")
    if row == "post-filter":
        return {"+": "**smoothing**: a blur of the baseline, no training, beats DAA",
                "0": "**smoothing**: a blur of the baseline, no training, does as well as DAA",
                "−": "**more than smoothing**: DAA beats the best blur of the baseline"}.get(g(row, "daa"), "open")
    if row == "placebo":
        vs_daa, vs_base = g(row, "daa"), g(row, "baseline")
        if "?" in (vs_daa, vs_base):
            return "open"
        if vs_daa == "−":
            return ("**adaptation**: without target data the gain is gone" if vs_base != "+" else
                    "**partly adaptation**: a gain without target data, and more with them")
        if vs_base == "+":
            return "**regularisation**: the gain comes without any target data"
        return "**undecided**: the placebo differs from neither DAA nor the baseline"
    if row == "official":
        vs_own, vs_daa = g(row, "baseline-lr1e-4"), g(row, "daa")
        if "?" in (vs_own, vs_daa):
            return "open"
        own = {"+": "gains", "0": "no gain", "−": "a loss"}[vs_own]
        rel = {"+": "more than", "0": "as much as", "−": "less than"}[vs_daa]
        if vs_own == daa:
            drive = "the official settings read as this project's do"
        elif daa == "+":
            drive = "**this project's choices drive the gain**"
        elif vs_own == "+":
            drive = "the official settings gain where this project's do not"
        else:
            drive = "the official settings do worse than this project's"
        return f"{own} over its own baseline, {rel} this project's DAA: {drive}"
    return ""


SUMMARY_BEGIN, SUMMARY_END = "<!-- daa-mini-controls -->", "<!-- /daa-mini-controls -->"
ROWS = (("daa", "DAA (this project's final configuration)", "the reference", "baseline"),
        ("placebo", "placebo: DAA with no target data (its real stream: pool U under the source noise)",
         "adaptation vs a regulariser", "baseline"),
        ("post-filter", "post-filter: the baseline's outputs blurred, σ chosen on validation, no training",
         "adaptation vs smoothing", "baseline"),
        ("official", "official hyper-parameters: α 0.2, one lr 1e-4, ε_θ dropout 0.2 (vs its baseline at lr 1e-4)",
         "whether this project's choices drive the result", "baseline-lr1e-4"))


def summary_md(doc: dict) -> str:
    """The controls' one-glance table for docs/RESULTS.md (between SUMMARY_BEGIN / SUMMARY_END): per control its
    difference to the baseline on validation and on the test pools, to DAA on the test pools, and its reading."""
    val, test = (next((t for t in doc["studies"] if t["study"] == n), None) for n in STUDIES)

    def cell(t: dict | None, key: str, bold: bool = False) -> str:
        d = (t or {}).get("differences", {}).get(key)
        if not d or not d.get("seeds"):
            return "not run"
        m = f"**{d['mean']:+.2f}**" if bold else f"{d['mean']:+.2f}"
        return m + ("" if math.isnan(d["ci95"][0]) else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]")

    lines = ["| control | what it tells apart | validation: Δ vs baseline [95 %] | test pools: Δ vs baseline [95 %] "
             "| test pools: Δ vs DAA [95 %] | source Δ, test | what it shows |", "|---|---|---|---|---|---|---|"]
    for row, name, apart, ref in ROWS:
        d = (test or {}).get("differences", {}).get(f"{row} − {ref}")
        src = f"{d['source'][0]:+.2f}" if d and d.get("seeds") else ""
        lines.append(f"| {name} | {apart} | {cell(val, f'{row} − {ref}', True)} | {cell(test, f'{row} − {ref}', True)}"
                     f" | {'' if row == 'daa' else cell(test, f'{row} − daa')} | {src} | "
                     f"{reading(row, (test or {}).get('differences', {})) if row != 'daa' else ''} |")
    commits = ", ".join(c[:7] for c in doc.get("commits", []))
    return "\n".join(lines) + (f"\n\n<sub>16k images, 3 seeds; test = pools E+F+G+H merged, scored once; runs at "
                               f"{commits}; paired photo × seed bootstrap. Regenerate: `make results`.</sub>")


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
