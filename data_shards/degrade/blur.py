"""Blur degradations: naive linear motion (source) and realistic camera shake in linear light (target).

Source: the "GoPro-like" naive synthesis the paper's source domain stands for (spec/method.md §5.1): one linear motion
kernel, length ~ U[3, 9] px, angle ~ U[0, pi), rasterised as a 4x-supersampled line, convolved in sRGB, with no noise
and no saturation.

Target: a stand-in for RealBlur-J. The kernel is a random camera-shake trajectory after Boracchi & Foi, "Modeling the
Performance of Image Restoration from Motion Blur", IEEE TIP 2012 (as ported in DeblurGAN's `motion_blur/`), and the
image formation follows RSBlur (Rim et al., "Realistic Blur Synthesis for Learning Image Deblurring", ECCV 2022): blur
in linear light (inverse sRGB EOTF), saturated highlights that smear into bright streaks, Poisson-Gaussian sensor
noise, the sRGB OETF and JPEG. Parameters are those of notes/data.md §3.2.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import fftconvolve

from .noise import jpeg, poisson_gaussian

# Rec.709 luminance weights of linear sRGB, used to find the highlights that saturate.
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_ANXIETIES = tuple(round(0.001 * i, 3) for i in range(1, 11))  # {0.001, ..., 0.01} as in DeblurGAN's dataset script


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB EOTF (IEC 61966-2-1) on [0,1] values."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB OETF, the inverse of `srgb_to_linear`, on [0,1] values."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def line_kernel(length: float, angle: float, width: float = 1.0, supersample: int = 4) -> np.ndarray:
    """Anti-aliased straight segment centred in an odd square kernel, UNnormalised: each value is the fraction of the
    pixel the segment (of the given width) covers, so pixels crossed fully read ~1. `angle` is in radians,
    counter-clockwise from the +x axis as the image is viewed (rows grow downwards). Rasterised on a `supersample`x
    finer grid and box-downsampled, which is what "4x-supersampled line" means."""
    ss = int(supersample)
    half = 0.5 * (length + width)
    size = 2 * math.ceil(half) + 1
    c = size // 2
    # Sample points ~1/ss px apart along and across the segment, at cell midpoints so the kernel stays symmetric;
    # each stands for a (1/ss)^2 patch of the segment's area.
    n_along = max(1, math.ceil(length * ss))
    t = ((np.arange(n_along) + 0.5) / n_along - 0.5) * length
    n_across = max(1, round(width * ss))
    u = (np.arange(n_across) - (n_across - 1) / 2) / ss
    dx, dy = math.cos(angle), -math.sin(angle)
    px = (c + t[:, None] * dx - u[None, :] * dy).ravel()
    py = (c + t[:, None] * dy + u[None, :] * dx).ravel()
    ix = np.clip(np.floor((px + 0.5) * ss).astype(int), 0, size * ss - 1)
    iy = np.clip(np.floor((py + 0.5) * ss).astype(int), 0, size * ss - 1)
    fine = np.zeros((size * ss, size * ss), np.float64)
    np.add.at(fine, (iy, ix), 1.0)
    # Sample density: n_along/length per px along x n_across/width per px across, ~ss^2 per px^2 of segment.
    density = n_along / max(length, 1e-6) * n_across / width
    return (fine.reshape(size, ss, size, ss).sum(axis=(1, 3)) / density).astype(np.float32)


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of HxWx3 `img` with an odd square `kernel`; reflect borders keep the size and avoid a dark
    frame."""
    p = kernel.shape[0] // 2
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="reflect")
    return fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1)).astype(np.float32)


def linear_motion_kernel(
    rng: np.random.Generator, length_range: tuple[float, float] = (3.0, 9.0)
) -> tuple[np.ndarray, dict]:
    """Source kernel: a straight segment, length ~ U[length_range] px, angle ~ U[0, pi); non-negative, sums to 1."""
    length = float(rng.uniform(*length_range))
    angle = float(rng.uniform(0.0, math.pi))
    k = line_kernel(length, angle)
    return k / k.sum(), {"length": length, "angle": angle}


def shake_kernel(
    rng: np.random.Generator,
    canvas: int = 19,
    steps: int = 400,
    length_range: tuple[float, float] = (6.0, 15.0),
) -> tuple[np.ndarray, dict]:
    """Target kernel: a Boracchi-Foi random camera-shake trajectory splatted bilinearly over the full exposure.

    A particle moves `steps` times at constant speed (total path length ~ U[length_range]); each step its velocity
    gets a Gaussian kick (`gaussian_shake`), a pull back towards the start (`centripetal`) and, rarely, an impulsive
    near-reversal (a "big shake": pressing the shutter). `anxiety` scales all three. The kernel is centred on its
    centroid so the blurred image is not shifted against its ground truth (a time-average of a constant-speed path of
    length L lies within L/2 of every point, so canvas 19 always holds L <= 15)."""
    path_length = float(rng.uniform(*length_range))
    anxiety = float(rng.choice(_ANXIETIES))
    centripetal = 0.7 * float(rng.random())
    prob_big_shake = 0.2 * float(rng.random())
    gaussian_shake = 10.0 * float(rng.random())
    init_angle = 2.0 * math.pi * float(rng.random())
    n = steps - 1
    big = rng.random(n) < prob_big_shake * anxiety
    turn = rng.random(n) - 0.5
    kicks = rng.standard_normal((n, 2))

    step = path_length / n
    v = complex(math.cos(init_angle), math.sin(init_angle)) * anxiety  # DeblurGAN: tiny start, renormalised below
    x = np.zeros(steps, np.complex128)
    pos = 0j
    # Sequential by nature (each velocity depends on the last); 400 scalar steps cost well under a millisecond.
    for t in range(n):
        dv = anxiety * (gaussian_shake * complex(kicks[t, 0], kicks[t, 1]) - centripetal * pos) * step
        if big[t]:
            dv += 2.0 * v * complex(math.cos(math.pi + turn[t]), math.sin(math.pi + turn[t]))
        v += dv
        v = v / abs(v) * step
        pos = pos + v
        x[t + 1] = pos

    x = x - x.mean() + complex((canvas - 1) / 2, (canvas - 1) / 2)
    px, py = x.real, x.imag
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    k = np.zeros((canvas, canvas), np.float64)
    for ddy, ddx, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (np.clip(y0 + ddy, 0, canvas - 1), np.clip(x0 + ddx, 0, canvas - 1)), wgt)
    params = {
        "canvas": canvas,
        "steps": steps,
        "path_length": path_length,
        "anxiety": anxiety,
        "centripetal": centripetal,
        "prob_big_shake": prob_big_shake,
        "gaussian_shake": gaussian_shake,
        "init_angle": init_angle,
        "n_big_shakes": int(big.sum()),
    }
    return (k / k.sum()).astype(np.float32), params


def linear_motion_blur(
    img: np.ndarray, rng: np.random.Generator, length_range: tuple[float, float] = (3.0, 9.0)
) -> tuple[np.ndarray, dict]:
    """Source blur: one linear motion kernel convolved in sRGB; no noise, no saturation. Output in [0,1]."""
    k, kp = linear_motion_kernel(rng, length_range)
    out = convolve(np.clip(img, 0.0, 1.0).astype(np.float32), k)
    return np.clip(out, 0.0, 1.0), {"name": "linear_motion", **kp, "kernel_size": int(k.shape[0])}


def camera_shake_blur(
    img: np.ndarray,
    rng: np.random.Generator,
    saturation_prob: float = 0.5,
    saturation_gain_range: tuple[float, float] = (1.0, 4.0),
    log_k_range: tuple[float, float] = (math.log(1e-4), math.log(1e-3)),
    sigma_read_range: tuple[float, float] = (5e-4, 3e-3),
    quality_range: tuple[int, int] = (80, 95),
    path_length_range: tuple[float, float] = (6.0, 15.0),
) -> tuple[np.ndarray, dict]:
    """Target blur: shake kernel in linear light, saturated highlights, Poisson-Gaussian noise, sRGB OETF, JPEG."""
    saturate = bool(rng.random() < saturation_prob)
    sat_gain = 1.0 + float(rng.uniform(*saturation_gain_range)) if saturate else None
    k_gain = math.exp(float(rng.uniform(*log_k_range)))
    sigma_read = float(rng.uniform(*sigma_read_range))
    quality = int(rng.integers(quality_range[0], quality_range[1] + 1))
    k, kp = shake_kernel(rng, length_range=path_length_range)

    lin = srgb_to_linear(img)
    if sat_gain is not None:
        # A clipped highlight in the sharp photo stands for a scene brighter than white: boosting it before the blur
        # and clipping after makes light sources smear into the bright streaks real night shots show.
        lin = np.where((lin @ _LUMA)[..., None] > 0.8, lin * np.float32(sat_gain), lin)
    blurred = np.clip(convolve(lin, k), 0.0, 1.0)
    noisy = np.clip(poisson_gaussian(blurred, rng, k_gain, sigma_read), 0.0, 1.0)
    out = jpeg(linear_to_srgb(noisy), quality)
    params = {
        "name": "camera_shake",
        **kp,
        "saturation": saturate,
        "saturation_gain": sat_gain,
        "shot_gain_k": k_gain,
        "sigma_read": sigma_read,
        "jpeg_quality": quality,
    }
    return np.clip(out, 0.0, 1.0), params
