"""DAA-mini's bootstrap intervals (paired photo × seed, and the fallbacks for what older results kept) and the
headline table regenerated from committed results."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "launch" / "studies"))

import daa_mini_headline as headline  # noqa: E402
import daa_mini_stats as stats  # noqa: E402
from daa_mini_report import summarize  # noqa: E402


def test_constant_difference_has_a_point_interval():
    lo, hi = stats.photo_seed_interval(np.full((6, 3), 0.4), np.ones(6))
    assert lo == pytest.approx(0.4) and hi == pytest.approx(0.4)


def test_interval_weights_photos_by_crops_and_is_reproducible():
    d = np.array([[0.0, 0.0], [1.0, 1.0]])
    lo, hi = stats.photo_seed_interval(d, np.array([3.0, 1.0]))
    assert 0.0 <= lo < 0.25 < hi <= 1.0
    assert stats.photo_seed_interval(d, np.array([3.0, 1.0])) == (lo, hi)


def test_interval_covers_the_true_mean():
    """Photos and seeds drawn from known distributions: the 95 % interval covers the true gain most of the time."""
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(60):
        d = 0.3 + rng.normal(0, 0.5, (24, 1)) + rng.normal(0, 0.2, (1, 6)) + rng.normal(0, 0.1, (24, 6))
        lo, hi = stats.photo_seed_interval(d, np.ones(24), boot=2000, seed=k)
        hits += lo <= 0.3 <= hi
    assert hits >= 48  # nominal 57 of 60; a percentile bootstrap of 6 seeds runs a little narrow


def _results(seed_shift: dict[int, float], gain: float, photos=("a", "a", "b", "c")):
    """baseline and daa on 4 crops per seed; a seed moves both arms alike (shared data order, say)."""
    base = [24.0, 26.0, 20.0, 30.0]
    out = []
    for s, shift in seed_shift.items():
        for v, g in (("baseline", 0.0), ("daa", gain), ("oracle", 5.0)):
            each = [b + shift + g + (0.1 * i if v == "daa" else 0.0) for i, b in enumerate(base)]
            out.append({"variant": v, "seed": s, "target": {"psnr": sum(each) / 4, "ssim": 0.5, "psnr_each": each},
                        "source": {"psnr": 28.0 - (0.2 if v == "daa" else 0.0), "ssim": 0.7}})
    return out, list(photos)


INPUTS = {"target": {"psnr": 18.0, "ssim": 0.4, "psnr_each": [18.0] * 4}, "source": {"psnr": 19.0, "ssim": 0.4}}


def test_seed_pairing_removes_what_moves_both_arms():
    rs, photos = _results({0: -2.0, 1: 0.0, 2: 2.0}, gain=0.5)
    s = summarize("camdark", "t", INPUTS, rs, ["baseline", "daa", "oracle"], "fresh3", photos=photos)
    assert s["by_photo_seed"]["daa"]["2"]["a"] == pytest.approx(25.0 + 2.0 + 0.5 + 0.05)
    iv = s["intervals"]["daa"]
    assert iv["method"] == stats.PAIRED
    # photo differences 0.55, 0.70, 0.80 (crops 2, 1, 1): the interval spans them, seeds add nothing
    assert 0.55 <= iv["lo"] < iv["hi"] <= 0.80
    # the same summary without per-seed scores: unpaired, the seeds' ±2 dB shows up in the interval
    old = {k: v for k, v in s.items() if k != "by_photo_seed"}
    wide = stats.interval(old, "daa")
    assert wide["method"] == stats.PHOTOS_STD and wide["hi"] - wide["lo"] > 3 * (iv["hi"] - iv["lo"])
    old.pop("by_photo")
    only = stats.interval(old, "daa")
    assert only["method"] == stats.STD_ONLY and only["lo"] < s["verdict"]["gain_db"] < only["hi"]
    assert stats.interval(old, "nope") is None


def test_pooled_study_borrows_its_pools_photo_tables():
    rs, photos = _results({0: 0.0, 1: 0.1, 2: -0.1}, gain=0.5)
    p1 = summarize("camdark", "t", INPUTS, rs, ["baseline", "daa"], "fresh2", study="g", photos=photos)
    rs2, _ = _results({0: 0.0, 1: 0.1, 2: -0.1}, gain=-0.5)
    p2 = summarize("camdark", "t", INPUTS, rs2, ["baseline", "daa"], "fresh3", study="h", photos=["d", "d", "e", "f"])
    pooled = summarize("camdark", "t", INPUTS, rs + rs2, ["baseline", "daa"], "testpool", study="pool")
    assert "by_photo" not in pooled
    out = stats.with_pooled_photos([p1, p2, pooled], {"pool": ["g", "h"]})
    bp = out[2]["by_photo"]
    assert set(bp["crops"]) == {"a", "b", "c", "d", "e", "f"} and sum(bp["crops"].values()) == 8
    assert set(out[2]["by_photo_seed"]["daa"]["0"]) == set(bp["crops"])
    assert stats.interval(out[2], "daa")["method"] == stats.PAIRED
    # a pool without a per-photo table: the pooled study stays as it was
    assert "by_photo" not in stats.with_pooled_photos([p1, pooled], {"pool": ["g", "missing"]})[1]


def test_headline_rows_verdicts_and_extra_arms(tmp_path):
    rs, photos = _results({0: 0.0, 1: 0.1, 2: -0.1}, gain=0.5)
    extra = [{**r, "variant": "placebo"} for r in rs if r["variant"] == "baseline"]
    s = summarize("camdark", "t", INPUTS, rs + extra, ["baseline", "daa", "oracle", "placebo"], "fresh3",
                  study="r7", photos=photos)
    val = summarize("camdark", "t", INPUTS, rs, ["baseline", "daa"], "val", study="r7-val")
    (tmp_path / "summary.json").write_text(json.dumps([val, s]))
    plan = tmp_path / "plan.yaml"
    plan.write_text("studies:\n  - {name: r7, task: camdark, setting: 'dark, pool H', arms: [{name: baseline}, "
                    "{name: placebo, variant: daa, note: 'no target data: what smoothing alone gives'}]}\n")
    doc = tmp_path / "R.md"
    doc.write_text(f"# R\n{headline.BEGIN}\nold table\n{headline.END}\nkept text\n")
    assert headline.main(["--plan", str(plan), "--results", str(tmp_path), "--splice", str(doc)]) == 0
    text = doc.read_text()
    assert "old table" not in text and text.endswith(f"{headline.END}\nkept text\n")
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(rows) == 3  # header, r7, its placebo row; the validation study has none
    assert rows[1].startswith("| denoising | dark, pool H | 18.00 |") and "**+0.65** [+0.55, +0.80]" in rows[1]
    assert "**reproduced**" in rows[1]
    assert rows[2].startswith("| | ↳ placebo |") and "no target data: what smoothing alone gives" in rows[2]
    assert (tmp_path / "headline.md").read_text().strip() in text
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved[1]["intervals"]["placebo"]["method"] == stats.PAIRED and "daa" in saved[1]["intervals"]


def test_headline_without_markers_is_a_one_line_error(tmp_path):
    (tmp_path / "summary.json").write_text("[]")
    doc = tmp_path / "R.md"
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="needs one <!-- daa-mini-headline -->"):
        headline.main(["--results", str(tmp_path), "--splice", str(doc)])
    assert doc.read_text() == "no markers\n" and (tmp_path / "summary.json").read_text() == "[]"
    with pytest.raises(SystemExit, match="summary.json"):
        headline.main(["--results", str(tmp_path / "none"), "--splice"])
