"""Noise degradations: the paper's synthetic source (AWGN) and a camera-pipeline target (Brooks et al. 2019).

Source: additive white Gaussian noise, sigma ~ U[0, 75]/255 per image, i.i.d. over pixels and channels and NOT clipped,
exactly as the Noise-DA code adds it to DFWB crops (spec/method.md §5.1).

Target: a stand-in for real smartphone noise (SIDD). Following Brooks et al., "Unprocessing Images for Learned Raw
Denoising", CVPR 2019 (google-research `unprocessing/unprocess.py`, `process.py`), the sRGB image is unprocessed to a
plausible raw RGGB mosaic, heteroscedastic shot/read noise is added there, and the camera ISP is re-run: white balance,
bilinear demosaic (which correlates the noise spatially and across channels), colour correction, brightness gain,
gamma and the smoothstep tone curve, then JPEG. Unlike the released `process.py` we re-apply the brightness gain and
the tone curve so that the noise-free round trip is close to identity (notes/data.md §2.1). The shot-noise range is
moved up to SIDD-like levels, ln shot ~ U[ln 2e-3, ln 2e-2] (notes/data.md §3.2).

Also holds two helpers shared with the other families: Poisson-Gaussian sensor noise (RSBlur-style, used by the
target blur) and in-memory JPEG via Pillow.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage

# XYZ -> camera matrices of the 4 cameras Brooks et al. sample from (unprocess.py, random_ccm).
XYZ2CAMS = np.array(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.6453]],
    ]
)
# Standard linear sRGB -> XYZ (D65).
RGB2XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
# BT.601 RGB -> (Y, Cb, Cr) without offsets, and back: the chroma noise reduction works on Cb, Cr.
_RGB2YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_YCC2RGB = np.linalg.inv(_RGB2YCC).astype(np.float32)
# RGGB colour-filter array: channel index of each pixel in a 2x2 cell.
_CFA = np.array([[0, 1], [1, 2]])
# Bilinear demosaic as a convolution of the zero-filled sparse planes (exact bilinear interpolation on RGGB).
_K_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_K_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip an HxWx3 [0,1] image through an in-memory Pillow JPEG (4:2:0 chroma, as most cameras write)."""
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def poisson_gaussian(lin: np.ndarray, rng: np.random.Generator, k: float, sigma_read: float) -> np.ndarray:
    """Sensor noise in linear light: Poisson(x/k)*k (shot, gain k) plus N(0, sigma_read^2) (read). Not clipped."""
    shot = rng.poisson(np.clip(lin, 0.0, None) / k).astype(np.float32) * np.float32(k)
    return shot + np.float32(sigma_read) * rng.standard_normal(lin.shape, dtype=np.float32)


def awgn(
    img: np.ndarray,
    rng: np.random.Generator,
    sigma_range: tuple[float, float] = (0.0, 75.0 / 255.0),
    sigma: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Paper's source noise: img + N(0, sigma^2), sigma ~ U[sigma_range] (in [0,1] units) unless given. Not clipped."""
    s = float(rng.uniform(*sigma_range)) if sigma is None else float(sigma)
    out = img.astype(np.float32) + np.float32(s) * rng.standard_normal(img.shape, dtype=np.float32)
    return out, {"name": "awgn", "sigma": s, "sigma_255": s * 255.0}


def _inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    # Closed-form inverse of s(x) = 3x^2 - 2x^3 on [0,1].
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * np.clip(y, 0.0, 1.0)) / 3.0)


def _demosaic_bilinear(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear RGGB demosaic of an HxW mosaic (H, W even). 'mirror' borders keep the Bayer parity at the edges."""
    h, w = mosaic.shape
    cfa = np.tile(_CFA, (h // 2, w // 2))
    out = np.empty((h, w, 3), np.float32)
    for c, kern in ((0, _K_RB), (1, _K_G), (2, _K_RB)):
        out[..., c] = ndimage.correlate(np.where(cfa == c, mosaic, 0.0).astype(np.float32), kern, mode="mirror")
    return out


def camera_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    shot_range: tuple[float, float] = (2e-3, 2e-2),
    quality_range: tuple[int, int] = (60, 90),
    jpeg_enabled: bool = True,
    chroma_blur: float = 0.0,
    sharpen: float = 0.0,
    return_reference: bool = False,
) -> tuple[np.ndarray, dict] | tuple[np.ndarray, np.ndarray, dict]:
    """Target noise: Brooks unprocess -> shot/read noise on the RGGB mosaic -> ISP -> JPEG. Output clipped to [0,1].

    `return_reference=True` also returns the camera's noise-free rendering of the same scene, ISP(noise-free mosaic)
    (no JPEG): (noisy, reference, params). That is the ground truth real noisy/clean pairs have (SIDD's and PolyU's
    clean images come out of the same camera pipeline), so noisy − reference is the noise alone. The photo itself is
    not: the mosaic and bilinear demosaic blur fine texture and add colour fringes, deterministically (the noise-free
    round trip is 22–49 dB PSNR depending on the photo's texture, docs/RESULTS.md), and a restorer scored against the
    photo is scored on undoing that as well. The random draws are the same either way, so the noisy image is too.

    `chroma_blur` > 0 adds the chroma noise reduction every camera ISP runs: the noise that the ISP carried into the
    image (ISP(noisy) − ISP(noise-free)) has its two chroma components (BT.601 Cb, Cr) Gaussian-blurred with this σ
    in pixels. `sharpen` > 0 adds the ISP's sharpening to the same noise: an unsharp mask of the luma component,
    Y + sharpen·(Y − G₁Y) (G₁: Gaussian, σ = 1 px), which gives real camera noise its fine grain. Both act on the
    noise only, so the noise-free round trip is unchanged."""
    # --- draw every parameter first (fixed order keeps a seed's output stable) ---
    weights = rng.uniform(1e-8, 1.0, 4)  # random convex combination of the 4 cameras
    xyz2cam = np.tensordot(weights / weights.sum(), XYZ2CAMS, axes=1)
    rgb2cam = xyz2cam @ RGB2XYZ
    rgb2cam /= rgb2cam.sum(axis=1, keepdims=True)  # rows sum to 1: grey stays grey in camera space
    cam2rgb = np.linalg.inv(rgb2cam)
    # Brightness gain 1/N(0.8, 0.1); the floor only guards a >4-sigma draw against a division blow-up.
    rgb_gain = 1.0 / max(float(rng.normal(0.8, 0.1)), 0.4)
    red_gain, blue_gain = float(rng.uniform(1.9, 2.4)), float(rng.uniform(1.5, 1.9))
    log_shot = float(rng.uniform(math.log(shot_range[0]), math.log(shot_range[1])))
    shot = math.exp(log_shot)
    # Read noise from the log-linear fit to the DND cameras (Brooks et al.).
    read = math.exp(2.18 * log_shot + 1.20 + float(rng.normal(0.0, 0.26)))
    quality = int(rng.integers(quality_range[0], quality_range[1] + 1)) if jpeg_enabled else None

    h, w = img.shape[:2]
    x = np.clip(img, 0.0, 1.0).astype(np.float32)
    if h % 2 or w % 2:  # the mosaic needs whole 2x2 cells
        x = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), mode="reflect")
    hp, wp = x.shape[:2]

    # --- unprocess: sRGB -> linear camera RGB with white balance and brightness undone ---
    lin = np.maximum(_inverse_smoothstep(x), 1e-8) ** 2.2
    cam = lin @ rgb2cam.T.astype(np.float32)
    gains = np.array([1.0 / red_gain, 1.0, 1.0 / blue_gain], np.float32) / rgb_gain
    gray = cam.mean(axis=-1, keepdims=True)
    # Near-white pixels keep their value so that highlights are not darkened into fake, unclipped colours.
    mask = (np.maximum(gray - 0.9, 0.0) / 0.1) ** 2
    cam = np.clip(cam * np.maximum(mask + (1.0 - mask) * gains, gains), 0.0, 1.0)

    # --- RGGB mosaic + heteroscedastic Gaussian approximation of shot + read noise ---
    cfa = np.tile(_CFA, (hp // 2, wp // 2))
    mosaic = np.take_along_axis(cam, cfa[..., None], axis=-1)[..., 0]
    std = np.sqrt(np.maximum(shot * mosaic + read, 0.0)).astype(np.float32)
    noisy = mosaic + std * rng.standard_normal(mosaic.shape, dtype=np.float32)

    # --- forward ISP: WB + brightness gains, demosaic, cam -> rgb, gamma, tone curve ---
    cell_gain = np.array([[red_gain, 1.0], [1.0, blue_gain]], np.float32) * np.float32(rgb_gain)
    gain_map = np.tile(cell_gain, (hp // 2, wp // 2))

    def isp(m: np.ndarray) -> np.ndarray:
        rgb = np.clip(_demosaic_bilinear(np.clip(m * gain_map, 0.0, 1.0)) @ cam2rgb.T.astype(np.float32), 0.0, 1.0)
        rgb = np.maximum(rgb, 1e-8) ** (1.0 / 2.2)
        return (3.0 * rgb**2 - 2.0 * rgb**3)[:h, :w]

    out = isp(noisy)
    clean = isp(mosaic) if chroma_blur > 0 or sharpen > 0 or return_reference else None
    if chroma_blur > 0 or sharpen > 0:
        n = (out - clean) @ _RGB2YCC.T
        if chroma_blur > 0:
            for c in (1, 2):
                n[..., c] = ndimage.gaussian_filter(n[..., c], chroma_blur, mode="mirror")
        if sharpen > 0:
            n[..., 0] += sharpen * (n[..., 0] - ndimage.gaussian_filter(n[..., 0], 1.0, mode="mirror"))
        out = clean + n @ _YCC2RGB.T
    if quality is not None:
        out = jpeg(out, quality)
    params = {
        "name": "camera_noise",
        "shot": shot,
        "read": read,
        "rgb_gain": rgb_gain,
        "red_gain": red_gain,
        "blue_gain": blue_gain,
        "ccm_weights": [float(v) for v in weights / weights.sum()],
        "jpeg_quality": quality,
        "chroma_blur": float(chroma_blur),
        "sharpen": float(sharpen),
    }
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    if return_reference:
        return out, np.clip(clean, 0.0, 1.0).astype(np.float32), params
    return out, params
