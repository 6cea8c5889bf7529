"""Image files in and out — the one image I/O of the writer, the reader, the validation splits, restore and evaluate:
PNG/JPEG/TIFF/BMP/WebP/PPM/PGM, 8- or 16-bit, gray/gray+alpha/RGB/RGBA → RGB. OpenCV does the codec work (Pillow
cannot hold 16-bit colour). Arrays are HxWx3 RGB uint8 or uint16. The crop-indexed PNG of the shards is
data_shards.pngcrop (it decodes through here whatever is not one of its own PNGs)."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """An unreadable or unsupported image; the message names the file."""


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded bytes → HxWx3 RGB uint8/uint16."""
    if not data:
        raise ImageError(f"{name}: empty image data")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        c = _tiff_channels(data)
        if c is not None and not 1 <= c <= 4:  # OpenCV decodes 1-4 channels only and says nothing more specific
            raise ImageError(f"{name}: unsupported channel count {c}; {SUPPORTED_CHANNELS}")
        raise ImageError(f"{name}: not a decodable image (corrupt or unsupported format)")
    return _to_rgb(img, name)


SUPPORTED_CHANNELS = "images must have 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels"


def _tiff_channels(data: bytes) -> int | None:
    """Samples per pixel of a TIFF that OpenCV refused (multispectral TIFFs have 5+), None if unknown/not a TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    log = logging.getLogger("tifffile")  # it logs its own complaint about a broken header; the caller reports it
    quiet, log.disabled = log.disabled, True
    try:
        import tifffile  # a scikit-image dependency; only the header is parsed

        with tifffile.TiffFile(io.BytesIO(data)) as t:
            return int(t.pages[0].samplesperpixel)
    except Exception:  # noqa: BLE001 - a broken header is reported as "not decodable" by the caller
        return None
    finally:
        log.disabled = quiet


def read_image(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    return decode_image(p.read_bytes(), str(p))


def _to_rgb(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype == np.float32 or img.dtype == np.float64:
            raise ImageError(f"{name}: floating-point images are not supported; save 8- or 16-bit")
        raise ImageError(f"{name}: unsupported sample type {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c == 1:
        return np.repeat(img, 3, axis=2)
    if c == 2:  # gray + alpha
        return np.repeat(img[..., :1], 3, axis=2)
    if c == 3:
        return np.ascontiguousarray(img[..., ::-1])  # OpenCV decodes BGR
    if c == 4:
        return np.ascontiguousarray(img[..., 2::-1])  # BGRA → RGB, alpha dropped
    raise ImageError(f"{name}: unsupported channel count {c}; {SUPPORTED_CHANNELS}")


def rgb_channels(a: np.ndarray) -> np.ndarray:
    """An RGB-ordered HxW / HxWx{1,2,3,4} array → HxWx3: gray replicated, alpha dropped."""
    if a.ndim == 2:
        a = a[:, :, None]
    c = a.shape[2]
    if c in (1, 2):
        return np.repeat(a[:, :, :1], 3, axis=2)
    return a[:, :, :3]


def to_float01(a: np.ndarray) -> np.ndarray:
    """uint8/uint16 HxWx3 → float32 in [0,1]: v / 255 (or / 65535), correctly rounded, as torch's `x / 255`."""
    return a.astype(np.float32) / np.float32(65535.0 if a.dtype == np.uint16 else 255.0)


def from_float01(x: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    peak = 65535.0 if bit_depth == 16 else 255.0
    return np.round(np.clip(x, 0.0, 1.0) * peak).astype(np.uint16 if bit_depth == 16 else np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    """HxWx3 (or HxW) uint8/uint16 → lossless PNG bytes of the same bit depth."""
    a = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write atomically (temp + rename) so an interrupted run never leaves a truncated image."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(encode_png(rgb))
    os.replace(tmp, p)


def list_images(folder: str | os.PathLike) -> list[Path]:
    d = Path(folder)
    if not d.exists():
        raise FileNotFoundError(f"folder not found: {d}")
    if d.is_file():
        return [d]
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) in {d}")
    return files
