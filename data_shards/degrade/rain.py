"""Rain degradations: Rain100L-like thin streaks (source) and layered, slanted, screen-blended rain (target).

Source: one light layer of thin near-vertical streaks added to the image, like Rain100L (Yang et al., "Deep Joint Rain
Detection and Removal from a Single Image" (JORDER), CVPR 2017) and the Photoshop-style renderings inside Rain13K:
Bernoulli seeds smeared by a 1-px line kernel, added and clipped.

Target: a stand-in for real rain (SPA-Data, "Real-Internet" photos), which differs from Rain100L by slanted wind
angles, several depth layers (dense faint far streaks, sparse thick defocused near ones), semi-transparent screen
blending and, in heavy rain, veiling haze (the accumulation model O = T*(B + rain) + (1 - T)*A of JORDER and Li et al.,
"Heavy Rain Image Restoration", CVPR 2019). Layers combine by screen blending, 1 - prod(1 - S_i), as does the image;
optional haze with T = exp(-beta*d) on a vertical depth ramp; then JPEG. Parameters are those of notes/data.md §3.2.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from .blur import line_kernel
from .noise import jpeg


def streak_layer(
    shape: tuple[int, int],
    rng: np.random.Generator,
    density: float,
    length: float,
    angle_deg: float,
    width: float,
    strength: float,
    defocus: bool = False,
    brightness_range: tuple[float, float] = (0.6, 1.0),
) -> np.ndarray:
    """One HxW streak layer in [0,1]: Bernoulli(density) seeds with brightness ~ U[brightness_range], smeared along
    `angle_deg` (90 = vertical) into streaks of `length` x `width` px, optionally Gaussian-defocused (sigma =
    width/2). A sharp isolated streak peaks at brightness*strength; overlapping streaks add up (then clip)."""
    kern = line_kernel(length, math.radians(angle_deg), width=width)  # ~1 inside the streak
    if defocus:
        # Not renormalised afterwards: defocus spreads a drop's light over more pixels, it does not add light, so
        # a defocused streak is wider and fainter (peak ~0.5x for sigma = width/2). This puts the no-haze target
        # at ~20 dB input PSNR, near the pilot's 19.1 dB (notes/data.md §3.2).
        kern = gaussian_filter(np.pad(kern, math.ceil(1.5 * width)), sigma=width / 2.0, mode="constant")
    p = kern.shape[0] // 2
    h, w = shape
    # Seeds on a canvas padded by the kernel radius so streaks enter from outside the frame instead of ending at it.
    hit = rng.random((h + 2 * p, w + 2 * p)) < density
    seeds = np.zeros(hit.shape, np.float32)
    seeds[hit] = rng.uniform(*brightness_range, size=int(hit.sum()))
    return np.clip(fftconvolve(seeds, kern, mode="valid") * strength, 0.0, 1.0).astype(np.float32)


def rain100l(
    img: np.ndarray,
    rng: np.random.Generator,
    density_range: tuple[float, float] = (0.003, 0.008),
    length_range: tuple[float, float] = (15.0, 30.0),
    angle_jitter_deg: float = 10.0,
    strength_range: tuple[float, float] = (0.4, 0.8),
) -> tuple[np.ndarray, dict]:
    """Source rain: one layer of thin near-vertical (90 +- 10 deg) streaks, added to all channels and clipped."""
    density = float(rng.uniform(*density_range))
    length = float(rng.uniform(*length_range))
    angle = 90.0 + float(rng.uniform(-angle_jitter_deg, angle_jitter_deg))
    strength = float(rng.uniform(*strength_range))
    s = streak_layer(img.shape[:2], rng, density, length, angle, 1.0, strength)
    out = np.clip(img.astype(np.float32) + s[..., None], 0.0, 1.0)
    params = {"name": "rain100l", "density": density, "length": length, "angle_deg": angle, "strength": strength}
    return out, params


def realistic_rain(
    img: np.ndarray,
    rng: np.random.Generator,
    haze: bool = False,
    wind_range_deg: tuple[float, float] = (-30.0, 30.0),
    layer_jitter_deg: float = 5.0,
    quality_range: tuple[int, int] = (75, 95),
) -> tuple[np.ndarray, dict]:
    """Target rain: one far + 1-2 near defocused layers sharing a wind angle, screen-blended; optional haze; JPEG."""
    h, w = img.shape[:2]
    wind = float(rng.uniform(*wind_range_deg))
    n_near = int(rng.integers(1, 3))
    layers = []
    # Far layer: dense, short, thin, faint (distant drops are small and motion-blurred little).
    layers.append(
        {
            "kind": "far",
            "density": float(rng.uniform(0.01, 0.02)),
            "length": float(rng.uniform(6.0, 12.0)),
            "width": 1.0,
            "strength": float(rng.uniform(0.1, 0.25)),
        }
    )
    # Near layers: sparse, long, thick and out of focus (close drops sweep far during the exposure).
    for _ in range(n_near):
        layers.append(
            {
                "kind": "near",
                "density": float(rng.uniform(0.001, 0.004)),
                "length": float(rng.uniform(25.0, 50.0)),
                "width": float(rng.integers(2, 4)),
                "strength": float(rng.uniform(0.25, 0.5)),
            }
        )
    for layer in layers:
        layer["angle_deg"] = 90.0 + wind + float(rng.uniform(-layer_jitter_deg, layer_jitter_deg))

    keep = np.ones((h, w), np.float32)  # prod(1 - S_i): screen blending of all layers
    for layer in layers:
        s = streak_layer(
            (h, w), rng, layer["density"], layer["length"], layer["angle_deg"], layer["width"], layer["strength"],
            defocus=layer["kind"] == "near",
        )
        keep *= 1.0 - s
    # Screen blend with the image: rain brightens, but never pushes a pixel past white (semi-transparent drops).
    out = 1.0 - (1.0 - np.clip(img, 0.0, 1.0).astype(np.float32)) * keep[..., None]

    params: dict = {"name": "realistic_rain", "wind_deg": wind, "layers": layers, "haze": bool(haze)}
    if haze:
        beta = float(rng.uniform(0.1, 0.6))
        slope = float(rng.uniform(0.0, 1.0))
        airlight = float(rng.uniform(0.6, 0.9))
        # Normalised depth ramp from 1 at the top of the frame (sky, horizon: far) down to 1 - slope at the bottom
        # (ground: near), the usual layout of outdoor photos.
        depth = 1.0 - slope * np.linspace(0.0, 1.0, h, dtype=np.float32)
        trans = np.exp(-beta * depth)[:, None, None].astype(np.float32)
        out = trans * out + (1.0 - trans) * np.float32(airlight)
        params.update({"beta": beta, "depth_slope": slope, "airlight": airlight})
    quality = int(rng.integers(quality_range[0], quality_range[1] + 1))
    params["jpeg_quality"] = quality
    return np.clip(jpeg(out, quality), 0.0, 1.0), params
