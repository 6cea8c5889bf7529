"""DAA-mini's intervals and headline table (used by daa_mini_report.py and daa_mini_headline.py).

Every arm − baseline difference of a study gets a 95 % bootstrap interval that resamples what varies between
repeats of the study: the photos the target split was cut from, and the training seeds. The two arms of one seed are
paired (same seed, same photos), so a seed that is good for both does not widen the interval.

Three levels, by what a study's summary holds:
- `photo × seed (paired)`: per seed and photo scores (`by_photo_seed`, written by every scoring since this module):
  each replicate draws the photos and the seeds with replacement and averages the paired differences, photos
  weighted by their crops;
- `photos; seed std unpaired`: only the per-photo table averaged over seeds (`by_photo`) and each arm's seed std:
  photos resampled as above, plus a seed term drawn from a Student t scaled by the unpaired seed std of the mean
  difference (pairing unknown, so the seed term is wider than a paired one would be);
- `seed std only`: no per-photo table: the seed term alone.
"""
from __future__ import annotations

import math

import numpy as np

BOOT = 10000
RNG_SEED = 20251207
HEADROOM_DB = 3.0
"""Oracle − baseline a test setting needs before a missed rule counts against the method: without it no adaptation
method has room to show a gain, and the verdict is "inconclusive"."""

PAIRED, PHOTOS_STD, STD_ONLY = "photo × seed (paired)", "photos; seed std unpaired", "seed std only"


def photo_seed_interval(diff: np.ndarray, weights: np.ndarray, boot: int = BOOT, seed: int = RNG_SEED,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the crop-weighted mean of `diff` (photos × seeds, paired differences), resampling
    photos and seeds independently with replacement."""
    diff, weights = np.asarray(diff, float), np.asarray(weights, float)
    n_p, n_s = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_s, (boot, n_s))
    photos = rng.integers(0, n_p, (boot, n_p))
    per_photo = diff[:, seeds].mean(axis=2).T  # (boot, photos): each replicate's seeds, averaged per photo
    picked = np.take_along_axis(per_photo, photos, axis=1)
    w = weights[photos]
    stats = (picked * w).sum(axis=1) / w.sum(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def photo_std_interval(diff_mean: np.ndarray, weights: np.ndarray, seed_se: float, dof: int, boot: int = BOOT,
                       seed: int = RNG_SEED, level: float = 0.95) -> tuple[float, float]:
    """Photos resampled from the seed-mean differences, plus a seed term seed_se × t(dof) per replicate (seed_se =
    0 or no photos: the other term alone)."""
    rng = np.random.default_rng(seed)
    if len(diff_mean):
        d, w = np.asarray(diff_mean, float), np.asarray(weights, float)
        photos = rng.integers(0, len(d), (boot, len(d)))
        stats = (d[photos] * w[photos]).sum(axis=1) / w[photos].sum(axis=1)
    else:
        stats = np.zeros(boot)
    if seed_se > 0 and dof > 0:
        stats = stats + seed_se * rng.standard_t(dof, boot)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _paired_matrix(s: dict, arm: str) -> tuple[np.ndarray, np.ndarray] | None:
    t = s.get("by_photo_seed")
    if not t or arm not in t or "baseline" not in t:
        return None
    seeds = [k for k in t[arm] if k in t["baseline"]]
    photos = list(s["by_photo"]["crops"])
    if not seeds:
        return None
    d = np.array([[t[arm][k][p] - t["baseline"][k][p] for k in seeds] for p in photos])
    return d, np.array([s["by_photo"]["crops"][p] for p in photos])


def interval(s: dict, arm: str = "daa") -> dict | None:
    """{lo, hi, method} for `arm` − baseline on the study's target split; None without both rows."""
    rows = s["rows"]
    if arm not in rows or "baseline" not in rows:
        return None
    m = _paired_matrix(s, arm)
    if m is not None:
        lo, hi = photo_seed_interval(*m)
        return {"lo": lo, "hi": hi, "method": PAIRED}
    (_, sa), (_, sb) = rows[arm]["target"], rows["baseline"]["target"]
    n = min(rows[arm]["n"], rows["baseline"]["n"])
    ok = n > 1 and not (math.isnan(sa) or math.isnan(sb))
    seed_se = math.sqrt((sa ** 2 + sb ** 2) / n) if ok else 0.0
    dof = rows[arm]["n"] + rows["baseline"]["n"] - 2 if ok else 0
    bp = s.get("by_photo")
    if bp and arm in bp and "baseline" in bp:
        photos = list(bp["crops"])
        d = np.array([bp[arm][p] - bp["baseline"][p] for p in photos])
        lo, hi = photo_std_interval(d, np.array([bp["crops"][p] for p in photos]), seed_se, dof)
        return {"lo": lo, "hi": hi, "method": PHOTOS_STD}
    if not ok:
        return None
    gain = rows[arm]["target"][0] - rows["baseline"]["target"][0]
    lo, hi = photo_std_interval(np.array([]), np.array([]), seed_se, dof)
    return {"lo": gain + lo, "hi": gain + hi, "method": STD_ONLY}


def pooled_by_photo(parts: list[dict]) -> dict:
    """The per-photo tables of studies that scored the same runs on disjoint photo pools, as one table (the photos of
    a merged split); the rows every part has, per-seed scores only where every part has them."""
    out: dict = {}
    keys = set.intersection(*(set(p["by_photo"]) for p in parts))
    for p in parts:
        for k in keys:
            out.setdefault(k, {}).update(p["by_photo"][k])
    return out


def with_pooled_photos(summaries: list[dict], pooled_from: dict[str, list[str]]) -> list[dict]:
    """Studies named in `pooled_from` (study → the studies of its pools) without a per-photo table get their pools'
    tables merged, when every pool has one; the others are returned as they are."""
    by = {s["study"]: s for s in summaries}
    out = []
    for s in summaries:
        parts = [by.get(n) for n in pooled_from.get(s["study"], [])]
        if "by_photo" not in s and parts and all(p is not None and "by_photo" in p for p in parts):
            s = {**s, "by_photo": pooled_by_photo(parts)}
            seeds = [p.get("by_photo_seed") for p in parts]
            if all(seeds):
                merged: dict = {}
                for t in seeds:
                    for arm, per_seed in t.items():
                        for k, photos in per_seed.items():
                            merged.setdefault(arm, {}).setdefault(k, {}).update(photos)
                s["by_photo_seed"] = merged
        out.append(s)
    return out
