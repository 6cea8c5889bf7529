"""Statistics of image noise, to calibrate a synthetic noise model against real noisy photographs
(`python -m data_shards.noise_stats --help`).

Four numbers describe how a denoiser trained on white Gaussian noise will see a noise field n (HxWx3, [0,1] units):
- **level**: std of n in 8-bit units (σ·255), and the input PSNR where a clean image is known;
- **lag-1 autocorrelation**: corr(n[y, x], n[y, x+1]) and the vertical one, averaged (AWGN: 0; demosaicing and JPEG
  push it up: the noise becomes blotchy);
- **power by band**: the share of the noise power below 0.125 cycles/px (radial frequency; blotches of 8 px and more;
  AWGN: π/64 ≈ 0.05) and above 0.25 cycles/px (fine grain; AWGN: 1 − π/16 ≈ 0.80);
- **chroma share**: the share of the power orthogonal to the grey axis (1,1,1)/√3 (AWGN: 2/3; noise that is the
  same in R, G and B has 0).

Two estimators of n, so that images without ground truth can be compared with those that have it:
- `pairs`: n = noisy − clean (PolyU *_real / *_mean, or a synthetic degradation of a clean photo);
- `flat`: no ground truth. The image is cut into `block`² blocks; the `keep` fraction with the least structure (lowest
  gradient energy of a Gaussian-smoothed copy, so noise does not decide) is kept, and a plane is fitted and removed
  per block and channel. What is left is mostly noise. The estimator is biased (the plane fit removes the lowest
  frequencies, the flattest blocks are often dark or bright), so compare `flat` numbers only with `flat` numbers:
  the table reports it for every set, next to the `pairs` figures where a clean image exists.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

GREY = np.ones(3) / np.sqrt(3.0)
HIGH_BAND = 0.25
"""Cycles per pixel above which noise power counts as 'high-band' (Nyquist is 0.5)."""
LOW_BAND = 0.125
"""Cycles per pixel below which noise power counts as 'low-band'."""


@dataclass
class NoiseStats:
    name: str
    estimator: str
    n_images: int
    sigma_255: float
    lag1: float
    high_band: float
    chroma: float
    low_band: float = float("nan")
    psnr_in: float | None = None


def _lag1(n: np.ndarray) -> float:
    """Mean of the horizontal and vertical lag-1 correlation of a (..., H, W, 3) field, per channel."""
    n = n - n.mean(axis=(-3, -2), keepdims=True)
    var = (n * n).mean(axis=(-3, -2))
    h = (n[..., :, 1:, :] * n[..., :, :-1, :]).mean(axis=(-3, -2))
    v = (n[..., 1:, :, :] * n[..., :-1, :, :]).mean(axis=(-3, -2))
    return float(np.mean((h + v) / 2 / np.maximum(var, 1e-20)))


def _band(n: np.ndarray, lo: float, hi: float) -> float:
    """Share of the power of a (..., H, W, 3) field at radial frequencies in (lo, hi] cycles/px (pooled)."""
    h, w = n.shape[-3:-1]
    p = np.abs(np.fft.fft2(n - n.mean(axis=(-3, -2), keepdims=True), axes=(-3, -2))) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    return float(p[..., (f > lo) & (f <= hi), :].sum() / max(p.sum(), 1e-20))


def _high_band(n: np.ndarray) -> float:
    return _band(n, HIGH_BAND, 1.0)


def _low_band(n: np.ndarray) -> float:
    return _band(n, 0.0, LOW_BAND)


def _chroma(n: np.ndarray) -> float:
    tot = float((n * n).sum())
    grey = float(((n @ GREY) ** 2).sum())
    return 1.0 - grey / max(tot, 1e-20)


def field_stats(noise: list[np.ndarray], name: str, estimator: str, psnr_in: float | None = None) -> NoiseStats:
    """Pooled statistics of noise fields (each HxWx3 in [0,1] units, or a stack of equal-size blocks)."""
    sig = float(np.sqrt(np.mean([np.mean(f * f) for f in noise])) * 255.0)
    lag = float(np.mean([_lag1(f) for f in noise]))
    hb = float(np.mean([_high_band(f) for f in noise]))
    ch = float(np.mean([_chroma(f) for f in noise]))
    lb = float(np.mean([_low_band(f) for f in noise]))
    return NoiseStats(name, estimator, len(noise), sig, lag, hb, ch, low_band=lb, psnr_in=psnr_in)


def flat_blocks(img: np.ndarray, block: int = 32, keep: float = 0.25) -> np.ndarray:
    """(K, block, block, 3) plane-removed residuals of the flattest blocks of a noisy HxWx3 image (see docstring)."""
    h, w = (img.shape[0] // block) * block, (img.shape[1] // block) * block
    if h == 0 or w == 0:
        raise ValueError(f"image {img.shape[:2]} is smaller than one {block}² block")
    x = img[:h, :w].astype(np.float64)
    smooth = ndimage.gaussian_filter(x.mean(axis=2), 2.0)
    g = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    score = g.reshape(h // block, block, w // block, block).mean(axis=(1, 3)).ravel()
    idx = np.argsort(score, kind="stable")[: max(1, int(round(keep * score.size)))]
    blocks = x.reshape(h // block, block, w // block, block, 3).transpose(0, 2, 1, 3, 4).reshape(-1, block, block, 3)
    b = blocks[idx]
    # least-squares plane a + b·y + c·x per block and channel
    yy, xx = np.mgrid[0:block, 0:block].astype(np.float64)
    a = np.stack([np.ones(block * block), yy.ravel() - yy.mean(), xx.ravel() - xx.mean()], 1)  # (P, 3)
    v = b.reshape(len(b), block * block, 3)
    coef = np.linalg.lstsq(a, v.transpose(1, 0, 2).reshape(block * block, -1), rcond=None)[0]
    resid = v - (a @ coef).reshape(block * block, len(b), 3).transpose(1, 0, 2)
    return resid.reshape(len(b), block, block, 3).astype(np.float32)


def pair_stats(noisy: list[np.ndarray], clean: list[np.ndarray], name: str) -> NoiseStats:
    from skimage.metrics import peak_signal_noise_ratio

    fields = [n.astype(np.float32) - c.astype(np.float32) for n, c in zip(noisy, clean)]
    ps = [float(peak_signal_noise_ratio(c.astype(np.float64), np.clip(n, 0, 1).astype(np.float64), data_range=1.0))
          for n, c in zip(noisy, clean)]
    return field_stats(fields, name, "pairs", float(np.mean(ps)))


def flat_stats(noisy: list[np.ndarray], name: str, block: int = 32, keep: float = 0.25) -> NoiseStats:
    return field_stats([flat_blocks(n, block, keep) for n in noisy], name, "flat")


def table_md(rows: list[NoiseStats]) -> str:
    lines = ["| set | estimator | images | σ (8-bit) | input PSNR (dB) | lag-1 autocorr. | power < 0.125 cyc/px | "
             "power > 0.25 cyc/px | chroma share |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = f"{r.psnr_in:.2f}" if r.psnr_in is not None else "–"
        lines.append(f"| {r.name} | {r.estimator} | {r.n_images} | {r.sigma_255:.2f} | {p} | {r.lag1:.2f} | "
                     f"{r.low_band:.2f} | {r.high_band:.2f} | {r.chroma:.2f} |")
    return "\n".join(lines)


# ---- CLI ----------------------------------------------------------------------------------------------------------
def _read(path: str) -> np.ndarray:
    from .imageio import read_image

    a = read_image(path)
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)


def _polyu(folder: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    reals = sorted(p for p in glob.glob(os.path.join(folder, "*_real.*")))
    if not reals:
        raise SystemExit(f"error: {folder}: no *_real.* images (expected PolyU-style *_real / *_mean pairs)")
    noisy, clean = [], []
    for r in reals:
        base = r.rsplit("_real.", 1)[0]
        m = next((c for c in glob.glob(base + "_mean.*")), None)
        if m is None:
            raise SystemExit(f"error: {r} has no matching *_mean image")
        noisy.append(_read(r))
        clean.append(_read(m))
    return noisy, clean


def synthetic_sets(photos: str, specs: list[str], crops: int, seed: int) -> list[tuple[str, list, list]]:
    """`name=task:domain[:key=value;...]` (values in JSON, or bare words such as profile=sidd) → (name, noisy, clean)
    over fixed 256² crops of the corpus's pool E."""
    from .corpus import load_manifest
    from .degrade import degrade_pair

    entries = [e for e in load_manifest(photos) if e.get("split") == "E"]
    if not entries:
        raise SystemExit(f"error: {photos}: no pool-E photos in the manifest (run `make data`)")
    rng = np.random.default_rng(seed)
    base = []
    for e in entries:
        img = _read(os.path.join(photos, e["file"]))
        for _ in range(crops):
            y, x = int(rng.integers(img.shape[0] - 255)), int(rng.integers(img.shape[1] - 255))
            base.append(np.round(img[y:y + 256, x:x + 256] * 255) / 255)
    out = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        parts = rest.split(":")
        if len(parts) < 2:
            raise SystemExit(f"error: --synthetic {spec!r}: expected NAME=TASK:DOMAIN[:key=value;...]")
        kw = {}
        for kv in (parts[2].split(";") if len(parts) > 2 and parts[2] else []):
            k, _, v = kv.partition("=")
            try:
                kw[k] = json.loads(v)
            except json.JSONDecodeError:
                kw[k] = v  # a bare word, e.g. profile=sidd
        noisy, clean = [], []
        for i, c in enumerate(base):
            try:  # reference=camera: pair against the camera's noise-free rendering (noisy − clean = the noise)
                d, r, _ = degrade_pair(c, parts[0], parts[1], np.random.default_rng(seed * 100_003 + i), **kw)
            except (ValueError, TypeError) as e:
                raise SystemExit(f"error: --synthetic {spec!r}: {e}") from None
            noisy.append(np.round(np.clip(d, 0, 1) * 255) / 255)
            clean.append(np.round(np.clip(r, 0, 1) * 255) / 255)
        out.append((name, noisy, clean))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", action="append", default=[], metavar="NAME=DIR",
                   help="a folder of *_real / *_mean pairs (PolyU layout)")
    p.add_argument("--noisy", action="append", default=[], metavar="NAME=DIR",
                   help="a folder of noisy images without ground truth (flat-block estimator only)")
    p.add_argument("--synthetic", action="append", default=[], metavar="NAME=TASK:DOMAIN[:k=v;...]",
                   help="a degradation of the corpus's pool-E crops, e.g. 'awgn25=denoise:source:sigma=0.098'; "
                        "'reference=camera' pairs camera noise with the camera's noise-free rendering")
    p.add_argument("--photos", default=".data/photos")
    p.add_argument("--crops", type=int, default=4, help="256² crops per pool-E photo for --synthetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    rows: list[NoiseStats] = []
    for spec in a.pairs:
        name, _, d = spec.partition("=")
        noisy, clean = _polyu(d)
        rows += [pair_stats(noisy, clean, name), flat_stats(noisy, name)]
    for spec in a.noisy:
        name, _, d = spec.partition("=")
        from .imageio import IMAGE_EXTS

        files = sorted(f for f in glob.glob(os.path.join(d, "*")) if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise SystemExit(f"error: --noisy {d}: no images")
        rows.append(flat_stats([_read(f) for f in files], name))
    for name, noisy, clean in synthetic_sets(a.photos, a.synthetic, a.crops, a.seed) if a.synthetic else []:
        rows += [pair_stats(noisy, clean, name), flat_stats(noisy, name)]
    if not rows:
        p.error("give at least one of --pairs, --noisy, --synthetic")
    print(table_md(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
