"""DAA-mini's headline table, from the committed results: `make results` (no training, no data, seconds).

Reads docs/results/summary.json (what `make reproduce` wrote) and the plan, applies the verdict rule and the
bootstrap intervals (daa_mini_report.verdict, daa_mini_stats) to every study again, rewrites summary.json and
tables.md with them, writes headline.md, and puts the table between the `<!-- daa-mini-headline -->` markers of each
--splice file (docs/RESULTS.md, README.md), so the verdicts a reader sees are the code's. With a controls.json beside
summary.json (daa_mini_controls.py) it also puts the controls' table, read by their fixed rules, between the
`<!-- daa-mini-controls -->` markers of docs/RESULTS.md and docs/results/controls.md.

Plan keys it reads (daa_mini.py ignores them): a study's `setting` (its short name in the table) and `pooled_from`
(the studies that scored the same runs on the pools of a merged split: their per-photo tables are merged for the
interval), and an arm's `note` (one sentence in the table's verdict column: what the row shows).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daa_mini_controls import SUMMARY_BEGIN, SUMMARY_END, summary_md  # noqa: E402
from daa_mini_report import TEST_SPLITS, intervals, summaries_md, verdict  # noqa: E402
from daa_mini_stats import HEADROOM_DB, PAIRED, PHOTOS_STD, STD_ONLY, with_pooled_photos  # noqa: E402

BEGIN, END = "<!-- daa-mini-headline -->", "<!-- /daa-mini-headline -->"
MARK = {PAIRED: "", PHOTOS_STD: "†", STD_ONLY: "‡"}
KIND = {"rain": "deraining", "blur": "deblurring"}


def rescore(summaries: list[dict], pooled_from: dict[str, list[str]]) -> list[dict]:
    """Each study with the verdict rule and the intervals applied again to its rows."""
    out = []
    for s in with_pooled_photos(summaries, pooled_from):
        s = {**s, "verdict": verdict(s["rows"])}
        if s["split"] not in TEST_SPLITS and s["verdict"]["status"] != "incomplete":
            s["verdict"]["status"] = "validation split: no verdict"
        s["intervals"] = intervals(s)
        out.append(s)
    return out


def _iv(s: dict, arm: str) -> str:
    iv = s.get("intervals", {}).get(arm)
    return "" if iv is None else " [{lo:+.2f}, {hi:+.2f}]".format(**iv) + MARK[iv["method"]]


def _verdict_cell(v: dict) -> str:
    st = v["status"]
    if st == "reproduced":
        return "**reproduced**"
    why = list(v.get("missed", []))
    if st == "inconclusive":
        why.insert(0, f"headroom {v['oracle_gap_db']:.2f} < {HEADROOM_DB:g} dB")
    return f"**{st}**" + (f": {'; '.join(why)}" if why else "")


def headline_md(summaries: list[dict], settings: dict[str, str], notes: dict[tuple[str, str], str]) -> str:
    """One row per test-split study (baseline / DAA / oracle), then one per other arm of it (ablations, controls):
    its PSNR in the DAA column, its difference to the baseline, and its `note`."""
    head = ("| task | test setting | input | baseline | DAA | oracle | DAA − baseline, 95 % interval (dB) "
            "| source Δ (dB) | verdict |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    marks = set()
    for s in summaries:
        if s["split"] not in TEST_SPLITS or s["verdict"].get("status") == "incomplete":
            continue
        r, v = s["rows"], s["verdict"]
        t = lambda k, r=r: f"{r[k]['target'][0]:.2f}" if k in r else "–"  # noqa: E731
        marks.update(iv["method"] for iv in s.get("intervals", {}).values())
        lines.append(f"| {KIND.get(s['task'], 'denoising')} | {settings.get(s['study'], s['title'])} | {t('input')} "
                     f"| {t('baseline')} | {t('daa')} | {t('oracle')} | **{v['gain_db']:+.2f}**{_iv(s, 'daa')} "
                     f"| {-v['source_loss_db']:+.2f} | {_verdict_cell(v)} |")
        for k in r:
            if k in ("input", "baseline", "daa", "oracle"):
                continue
            d = r[k]["target"][0] - r["baseline"]["target"][0]
            src = r[k]["source"][0] - r["baseline"]["source"][0]
            lines.append(f"| | ↳ {k} | | | {t(k)} | | {d:+.2f}{_iv(s, k)} | {src:+.2f} "
                         f"| {notes.get((s['study'], k), '')} |")
    foot = {PHOTOS_STD: "† photos resampled from the per-photo table; the seed term from the unpaired seed std "
                        "(per-seed per-photo scores were not kept for these runs)",
            STD_ONLY: "‡ no per-photo table: the seed term alone (unpaired seed std, Student t)"}
    note = "; ".join(foot[m] for m in (PHOTOS_STD, STD_ONLY) if m in marks)
    return "\n".join(lines) + (f"\n\n<sub>{note}. Regenerate: `make results`.</sub>" if note else
                               "\n\n<sub>Regenerate: `make results`.</sub>")


def _check(path: Path, begin: str = BEGIN, end: str = END) -> str:
    text = path.read_text() if path.is_file() else ""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"error: {path}: needs one {begin} line and one {end} line after it")
    return text


def splice(path: Path, table: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace what lies between the markers of `path` with `table`; a one-line error if they are missing."""
    pre, rest = _check(path, begin, end).split(begin)
    post = rest.split(end)[1]
    path.write_text(f"{pre}{begin}\n{table}\n{end}{post}")


def plan_keys(plan: Path) -> tuple[dict, dict, dict]:
    import yaml

    try:
        doc = yaml.safe_load(plan.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"error: --plan {plan}: {str(e).splitlines()[0]}") from None
    studies = doc.get("studies", []) if isinstance(doc, dict) else []
    settings = {d["name"]: str(d["setting"]) for d in studies if isinstance(d, dict) and "setting" in d}
    pooled = {d["name"]: list(d["pooled_from"]) for d in studies if isinstance(d, dict) and "pooled_from" in d}
    notes = {(d["name"], a.get("label", a.get("name"))): str(a["note"]) for d in studies if isinstance(d, dict)
             for a in d.get("arms", []) if isinstance(a, dict) and "note" in a}
    return settings, pooled, notes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default="launch/studies/plans/daa_mini.yaml")
    p.add_argument("--results", default="docs/results", help="the folder holding summary.json")
    p.add_argument("--splice", nargs="*", default=["docs/RESULTS.md", "README.md"],
                   help="markdown files whose headline block is replaced")
    p.add_argument("--controls-splice", nargs="*", default=["docs/RESULTS.md", "docs/results/controls.md"],
                   help="markdown files whose controls block is replaced (from controls.json beside summary.json)")
    a = p.parse_args(argv)
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    results = resolve(a.results)
    try:
        summaries = json.loads((results / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {results / 'summary.json'}: {e}") from None
    settings, pooled, notes = plan_keys(resolve(a.plan))
    controls = None
    if (results / "controls.json").is_file():
        try:
            controls = summary_md(json.loads((results / "controls.json").read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"error: {results / 'controls.json'}: {e!r}") from None
    for f in a.splice:  # check every target before writing anything
        _check(resolve(f))
    if controls is not None:
        for f in a.controls_splice:
            _check(resolve(f), SUMMARY_BEGIN, SUMMARY_END)
    summaries = rescore(summaries, pooled)
    table = headline_md(summaries, settings, notes)
    (results / "summary.json").write_text(json.dumps(summaries, indent=1))
    (results / "tables.md").write_text(summaries_md(summaries))
    (results / "headline.md").write_text(table + "\n")
    for f in a.splice:
        splice(resolve(f), table)
    if controls is not None:
        (results / "controls_summary.md").write_text(controls + "\n")
        for f in a.controls_splice:
            splice(resolve(f), controls, SUMMARY_BEGIN, SUMMARY_END)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
