"""The papers' test protocols, so that scores compare with published numbers (spec §6; `daa.evaluate --protocol`).

- **sidd**: the SIDD validation layout — 40 images × 32 blocks of 256×256×3 in a MATLAB file (v5, or v7.3 =
  HDF5), `ValidationNoisyBlocksSrgb` / `ValidationGtBlocksSrgb`, scored as the official `eva_denoise.m` does: the
  float predictions as they are (not rounded; uint8 blocks are divided by 255, as `im2single` does), each block
  with MATLAB's `psnr` (peak 1) and `ssim` on the whole 256×256×3 array — a volume to MATLAB, see
  `daa.metrics.ssim_matlab` — and the 1280 values averaged. A second SSIM column, `ssim_ch`, is the per-channel
  2-D SSIM of the blocks rounded to uint8 (scikit-image), for comparison with per-channel figures; it does not
  compare with the paper. Float blocks outside [0, 1] are refused: the official predictions are clamped to it.
- **realblur**: RealBlur's evaluation — each prediction is aligned to its ground truth before scoring, because the
  captured pairs are not pixel-aligned: the prediction's intensity is matched to the ground truth by a least-squares
  gain, an ECC alignment (OpenCV `findTransformECC` on grayscale, homography by default; translation or affine on
  request) maps it onto the ground truth, and PSNR/SSIM are computed on the overlap only (pixels the warp filled).
  A pair whose ECC does not converge is scored unaligned and reported (`aligned: False`).
- **spa**: PSNR and SSIM on the BT.601 Y channel (the deraining papers' protocol).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from .metrics import ssim_matlab

SIDD_KEYS = ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb", "BenchmarkNoisyBlocksSrgb", "Idenoised")
WARPS = {"translation": cv2.MOTION_TRANSLATION, "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


class ProtocolError(ValueError):
    """Input that does not fit a protocol; the message is one line naming the file."""


# ---- SIDD -----------------------------------------------------------------------------------------------------------
def load_blocks(path: str | Path, key: str | None = None) -> np.ndarray:
    """The (images, blocks, H, W, 3) array of a SIDD-style .mat file (MATLAB v5 via scipy, v7.3 via h5py)."""
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(f"{path}: file not found")
    with path.open("rb") as f:
        head = f.read(128)
    if head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head:
        import h5py

        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if not k.startswith("#")]
            name = _pick_key(names, key, path)
            a = np.asarray(f[name])
        a = np.transpose(a, tuple(range(a.ndim - 1, -1, -1)))  # MATLAB is column-major: h5py sees the dims reversed
    else:
        from scipy.io import loadmat

        try:
            m = loadmat(str(path))
        except Exception as e:  # noqa: BLE001 - any parse failure is "not a MATLAB file"
            raise ProtocolError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
        name = _pick_key([k for k in m if not k.startswith("__")], key, path)
        a = np.asarray(m[name])
    if a.ndim == 4 and a.shape[-1] != 3:  # one image's blocks
        a = a[None]
    if a.ndim != 5 or a.shape[-1] != 3:
        raise ProtocolError(f"{path}: expected (images, blocks, H, W, 3) blocks, got shape {a.shape}")
    return a


def _pick_key(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise ProtocolError(f"{path}: no variable {key!r} (has {', '.join(names)})")
        return key
    known = [k for k in SIDD_KEYS if k in names]
    if known:
        return known[0]
    if len(names) == 1:
        return names[0]
    raise ProtocolError(f"{path}: several variables ({', '.join(names)}); name one with --key")


def blocks_to_float01(a: np.ndarray, what: str = "blocks") -> np.ndarray:
    """Blocks as float32 in [0, 1], as MATLAB's `im2single`: uint8 / 255, uint16 / 65535, floats kept unchanged.

    Floats outside [0, 1] (e.g. saved in 0-255) or NaN are refused with a one-line error rather than clipped: a
    clip would score a different image than the one saved, and the official predictions are clamped to [0, 1]."""
    if a.dtype == np.uint8 or a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if not np.issubdtype(a.dtype, np.floating):
        raise ProtocolError(f"{what}: {a.dtype} values; expected uint8 (0-255) or floats in [0, 1]")
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN, which min/max propagate
        hint = "; they look like 0-255: divide by 255 or save uint8" if hi > 1.5 else ""
        raise ProtocolError(f"{what}: float values span [{lo:.4g}, {hi:.4g}], outside [0, 1]{hint}")
    return a.astype(np.float32, copy=False)


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Blocks in [0, 1] (from blocks_to_float01) as uint8, rounded: what saved 8-bit images would hold."""
    return np.round(np.asarray(a, dtype=np.float64) * 255.0).astype(np.uint8)


def score_sidd(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Mean over every block of: `psnr` (MATLAB `psnr`, peak 1, on the unrounded values), `ssim` (MATLAB `ssim` on
    the H×W×3 block as a volume: the column that compares with the paper), `ssim_ch` (per-channel 2-D SSIM on
    uint8-rounded blocks, data range 255). Identical blocks count 100 dB (MATLAB would give Inf)."""
    if pred.shape != gt.shape:
        raise ProtocolError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    p, g = blocks_to_float01(pred, "predictions"), blocks_to_float01(gt, "ground truth")
    psnrs, ssims, ssims_ch = [], [], []
    for i in range(p.shape[0]):
        for k in range(p.shape[1]):
            a, b = p[i, k].astype(np.float64), g[i, k].astype(np.float64)
            mse = np.mean((a - b) ** 2)
            psnrs.append(100.0 if mse == 0 else 10 * np.log10(1.0 / mse))
            ssims.append(ssim_matlab(a, b, data_range=1.0))
            a8, b8 = to_uint8(a).astype(np.float64), to_uint8(b).astype(np.float64)
            ssims_ch.append(structural_similarity(a8, b8, data_range=255.0, channel_axis=-1, gaussian_weights=True,
                                                  sigma=1.5, use_sample_covariance=False))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "ssim_ch": float(np.mean(ssims_ch)),
            "blocks": len(psnrs)}


# ---- RealBlur -------------------------------------------------------------------------------------------------------
def align(pred: np.ndarray, gt: np.ndarray, warp: str = "homography", iterations: int = 100):
    """pred aligned onto gt (both HxWx3 float in [0,1]): (aligned pred, gt, mask of the overlap, warp matrix,
    converged). When ECC does not converge the warp is the identity and `converged` is False.

    The prediction is first scaled by the least-squares gain Σgt·pred / Σpred² (exposure differs between a capture
    and its ground truth), then ECC finds the warp that maximises the correlation of the two grayscale images."""
    if warp not in WARPS:
        raise ProtocolError(f"unknown alignment {warp!r}; choose from {', '.join(WARPS)}")
    z = pred.astype(np.float32)
    x = gt.astype(np.float32)
    zs = z * (float(np.sum(x * z)) / max(float(np.sum(z * z)), 1e-12))
    mode = WARPS[warp]
    m = np.eye(3, 3, dtype=np.float32) if mode == cv2.MOTION_HOMOGRAPHY else np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 0)
    gray = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)  # noqa: E731
    converged = True
    try:
        _, m = cv2.findTransformECC(gray(x), gray(zs), m, mode, criteria, None, 5)
    except cv2.error:  # "iterations do not converge" / "images may be uncorrelated": keep the identity warp
        converged = False
    if not np.all(np.isfinite(m)):
        m, converged = (np.eye(3, 3, dtype=np.float32) if mode == cv2.MOTION_HOMOGRAPHY
                        else np.eye(2, 3, dtype=np.float32)), False
    h, w = x.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    if mode == cv2.MOTION_HOMOGRAPHY:
        zr = cv2.warpPerspective(zs, m, (w, h), flags=cv2.INTER_CUBIC + flags, borderMode=cv2.BORDER_REFLECT)
        cr = cv2.warpPerspective(np.ones_like(zs), m, (w, h), flags=cv2.INTER_NEAREST + flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    else:
        zr = cv2.warpAffine(zs, m, (w, h), flags=cv2.INTER_CUBIC + flags, borderMode=cv2.BORDER_REFLECT)
        cr = cv2.warpAffine(np.ones_like(zs), m, (w, h), flags=cv2.INTER_NEAREST + flags,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return zr * cr, x * cr, cr, m, converged


def score_aligned(pred_aligned: np.ndarray, gt_masked: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR over the overlap (peak 1) and SSIM averaged over the overlap (away from the SSIM window's border)."""
    err = np.sum((gt_masked.astype(np.float64) - pred_aligned) ** 2) / max(float(np.sum(mask)), 1.0)
    psnr = 100.0 if err == 0 else float(10 * np.log10(1.0 / err))
    _, smap = structural_similarity(gt_masked, pred_aligned, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, full=True)
    pad = (2 * int(3.5 * 1.5 + 0.5) + 1 - 1) // 2  # the Gaussian window's radius (truncate 3.5σ)
    sm, cm = (smap * mask)[pad:-pad, pad:-pad], mask[pad:-pad, pad:-pad]
    ssim = float(np.mean(sm.sum(axis=(0, 1)) / np.maximum(cm.sum(axis=(0, 1)), 1.0)))
    return {"psnr": psnr, "ssim": ssim}


def score_realblur(pred: np.ndarray, gt: np.ndarray, warp: str = "homography") -> dict:
    """RealBlur protocol for one pair of HxWx3 images in [0,1]: align, then score the overlap.
    `aligned` is False when ECC did not converge (the pair was then scored as it is)."""
    if pred.shape != gt.shape:
        raise ProtocolError(f"prediction {pred.shape[:2]} and ground truth {gt.shape[:2]} differ in size")
    zr, xr, cr, m, converged = align(np.clip(pred, 0, 1), np.clip(gt, 0, 1), warp)
    return {**score_aligned(zr, xr, cr), "warp": m.tolist(), "aligned": converged}
