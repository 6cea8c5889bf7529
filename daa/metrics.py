"""PSNR and SSIM on RGB and on the BT.601 luma (Y) channel, with the value range of the data made explicit.

Inputs are (B, 3, H, W) or (3, H, W) tensors or (H, W, 3) arrays in `value_range` (default [0, 1]; the deblurring
and deraining tasks train in [−1, 1]). Images are clamped to the range, mapped to [0, 1] and scored:
- RGB: PSNR with peak 1 over all channels; SSIM with scikit-image (Gaussian σ=1.5 window, population covariance,
  i.e. Wang et al.'s settings) averaged over channels.
- Y: Y = 16 + 65.481·R + 128.553·G + 24.966·B (range 16–235 in 8-bit units, as the deraining protocol, spec §6),
  PSNR with peak 255 and SSIM with data_range 255 on that channel.
Batches give one value per image (a float64 numpy array).
`ssim_matlab` is MATLAB's `ssim` (a 3-D array scored as a volume), for protocols scored with MATLAB.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

Range = tuple[float, float]


def _to_numpy01(img, value_range: Range) -> np.ndarray:
    """→ float64 (B, H, W, 3) in [0, 1]."""
    lo, hi = value_range
    if hi <= lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if isinstance(img, torch.Tensor):
        a = img.detach().to(torch.float64).cpu()
        if a.dim() == 3:
            a = a[None]
        if a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"metrics expect (B, 3, H, W) or (3, H, W) tensors, got shape {tuple(img.shape)}")
        a = a.permute(0, 2, 3, 1).numpy()
    else:
        a = np.asarray(img, dtype=np.float64)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"metrics expect (B, H, W, 3) or (H, W, 3) arrays, got shape {a.shape}")
    return (np.clip(a, lo, hi) - lo) / (hi - lo)


def _pair(pred, target, value_range):
    p, t = _to_numpy01(pred, value_range), _to_numpy01(target, value_range)
    if p.shape != t.shape:
        raise ValueError(f"prediction and target shapes differ: {p.shape} vs {t.shape}")
    return p, t


def rgb_to_y(img01: np.ndarray) -> np.ndarray:
    """BT.601 luma in 8-bit units (16–235) from RGB in [0, 1], last axis = channels."""
    return 16.0 + img01 @ np.array([65.481, 128.553, 24.966])


def _psnr(p: np.ndarray, t: np.ndarray, peak: float) -> np.ndarray:
    mse = ((p - t) ** 2).reshape(p.shape[0], -1).mean(1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak**2 / mse)  # identical images → inf, as skimage


def psnr(pred, target, value_range: Range = (0.0, 1.0)) -> np.ndarray:
    p, t = _pair(pred, target, value_range)
    return _psnr(p, t, 1.0)


def psnr_y(pred, target, value_range: Range = (0.0, 1.0)) -> np.ndarray:
    p, t = _pair(pred, target, value_range)
    return _psnr(rgb_to_y(p), rgb_to_y(t), 255.0)


def _ssim(p: np.ndarray, t: np.ndarray, data_range: float, channel_axis) -> float:
    return structural_similarity(p, t, data_range=data_range, channel_axis=channel_axis,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def ssim(pred, target, value_range: Range = (0.0, 1.0)) -> np.ndarray:
    p, t = _pair(pred, target, value_range)
    return np.array([_ssim(a, b, 1.0, -1) for a, b in zip(p, t)])


def ssim_y(pred, target, value_range: Range = (0.0, 1.0)) -> np.ndarray:
    p, t = _pair(pred, target, value_range)
    return np.array([_ssim(rgb_to_y(a), rgb_to_y(b), 255.0, None) for a, b in zip(p, t)])


def all_metrics(pred, target, value_range: Range = (0.0, 1.0)) -> dict[str, float]:
    """Batch means of psnr, ssim, psnr_y, ssim_y."""
    return {f.__name__: float(np.mean(f(pred, target, value_range))) for f in (psnr, ssim, psnr_y, ssim_y)}


def ssim_matlab(a: np.ndarray, ref: np.ndarray, data_range: float = 1.0, radius: float = 1.5) -> float:
    """SSIM as MATLAB's `ssim(A, ref)` computes it with its defaults, for a 2-D image or a 3-D array.

    MATLAB treats an H×W×3 array as a volume, not as three channels: its default `DataFormat` is all-spatial
    ("SSS"), so the Gaussian window spans the colour axis too (`DataFormat="SSC"` would give the per-channel
    mean instead; MATLAB Answers 2142916, R2023b). Each choice below is that of MATLAB's `ssim.m`
    (Image Processing Toolbox, 2013-2017 source, and the `ssim` reference page):
    - window: Gaussian with standard deviation `Radius` = 1.5, `filtRadius = ceil(3*Radius)` = 5, so
      `FilterSize = 2*filtRadius+1` = 11 along every axis; `imgaussfilt` for a matrix, `imgaussfilt3` otherwise
      (the normalised isotropic 3-D Gaussian, which is the product of three normalised 1-D ones);
    - padding: `'replicate'` (scipy's mode "nearest"), and the map is averaged over every voxel, border included
      (`ssimval = mean(ssimmap(:))`; no crop, unlike scikit-image);
    - constants: `RegularizationConstants` = [(0.01·L)², (0.03·L)², (0.03·L)²/2] with L = `DynamicRange`
      (1 for single/double input, 255 for uint8: `diff(getrangefromclass(A))`); with C3 = C2/2 and
      `Exponents` = [1 1 1] MATLAB uses the simplified form (Wang et al. 2004, eq. 13) coded here;
    - statistics: Gaussian-weighted means, σ² = G*(x²) − μ² (population form).
    MATLAB computes in single precision for single input; this is float64 (the means differ by ~1e-7)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(ref, dtype=np.float64)
    if x.shape != y.shape or x.ndim not in (2, 3):
        raise ValueError(f"ssim_matlab expects two 2-D or 3-D arrays of one shape, got {x.shape} and {y.shape}")
    r = int(np.ceil(3 * radius))

    def g(v):
        return ndimage.gaussian_filter(v, radius, mode="nearest", radius=r)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = g(x), g(y)
    mxy, mx2, my2 = mx * my, mx * mx, my * my
    sx2, sy2, sxy = g(x * x) - mx2, g(y * y) - my2, g(x * y) - mxy
    smap = (2 * mxy + c1) * (2 * sxy + c2) / ((mx2 + my2 + c1) * (sx2 + sy2 + c2))
    return float(smap.mean())
