"""Crop-indexed PNG: standard, lossless PNGs whose crops decode without inflating the rows above them.

`encode_png` writes every row with the "Sub" filter (no dependence on the row above) and full-flushes the zlib stream
every `index_rows` rows (a flush resets the history, so inflation can restart there); the flush offsets go into a
private ancillary chunk `daIX` that every PNG reader ignores. `decode_crop` then inflates only the row blocks of a
crop: a 128² crop of a 512² tile costs ~136 rows instead of 512 — where most of the speed-up of the shard reader over
per-file loading comes from (launch/bench/loader.py). No library inflates only a crop's rows, hence this module;
everything else about images (other formats, 16-bit, foreign PNGs) goes through data_shards.imageio (OpenCV).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .imageio import decode_image, rgb_channels

PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → samples per pixel
_INDEX_TAG = b"daIX"  # private ancillary chunk: ancillary, private, reserved-ok, unsafe-to-copy (depends on IDAT)


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit_depth, color_type, interlace) of a PNG, or None when `data` is not a PNG."""
    if len(data) < 33 or data[:8] != PNG_SIG or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


def image_size(data: bytes) -> tuple[int, int]:
    """(H, W) of an encoded image: from the header for PNGs, else by decoding it."""
    ihdr = png_header(data)
    if ihdr is not None:
        return ihdr[1], ihdr[0]
    return tuple(decode_image(data).shape[:2])  # type: ignore[return-value]


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)


def encode_png(a: np.ndarray, compress_level: int = 6, index_rows: int = 16) -> bytes:
    """HxW[xC] uint8/uint16 (C = 1..4, RGB order) → a standard, lossless PNG of the same bit depth that can be
    crop-decoded. Files are ~10 % larger than libpng's at the same level."""
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs uint8 or uint16, got {a.dtype}")
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    depth = 8 * a.dtype.itemsize
    bpp = c * a.dtype.itemsize
    rows = np.ascontiguousarray(a, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, w, bpp)
    filt = rows.copy()
    filt[:, 1:] -= rows[:, :-1]  # Sub filter; uint8 arithmetic wraps mod 256 as PNG defines it
    raw = np.concatenate([np.ones((h, 1), np.uint8), filt.reshape(h, w * bpp)], axis=1)
    comp = zlib.compressobj(compress_level)
    parts, size, offsets = [], 0, []
    for r in range(0, h, index_rows):
        offsets.append(size if r else 2)  # block 0 starts after the 2-byte zlib header
        for piece in (comp.compress(raw[r:r + index_rows].tobytes()), comp.flush(zlib.Z_FULL_FLUSH)):
            parts.append(piece)
            size += len(piece)
    parts.append(comp.flush())
    index = struct.pack(">BHI", 1, index_rows, len(offsets)) + struct.pack(f">{len(offsets)}I", *offsets)
    return (PNG_SIG + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + _chunk(_INDEX_TAG, index) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))


def _png_parts(data: bytes) -> tuple[memoryview, tuple[int, list[int]] | None]:
    """(concatenated IDAT payload, (rows per block, flush offsets) or None) of a PNG."""
    mv, pos, idat, index = memoryview(data), 8, [], None
    while pos + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        if tag == b"IDAT":
            idat.append(mv[pos + 8:pos + 8 + length])
        elif tag == _INDEX_TAG:
            version, rows, n = struct.unpack(">BHI", data[pos + 8:pos + 15])
            if version == 1 and rows > 0:
                index = (rows, list(struct.unpack(f">{n}I", data[pos + 15:pos + 15 + 4 * n])))
        elif tag == b"IEND":
            break
        pos += 12 + length
    return (idat[0] if len(idat) == 1 else memoryview(b"".join(idat))), index


def decode_crop(data: bytes, y0: int, x0: int, ph: int, pw: int | None = None) -> np.ndarray:
    """The (ph, pw) crop at (y0, x0) of an encoded image → ph×pw×3 uint8/uint16 (RGB).

    Crop-indexed PNGs inflate only the crop's row blocks; anything else is decoded whole (data_shards.imageio)."""
    pw = ph if pw is None else pw
    ihdr = png_header(data)
    if ihdr is not None and not ihdr[4] and ihdr[2] in (8, 16) and ihdr[3] in _PNG_CHANNELS:
        idat, index = _png_parts(data)
        if index is not None:
            w, h, depth, ctype, _ = ihdr
            if y0 < 0 or x0 < 0 or y0 + ph > h or x0 + pw > w:
                raise ValueError(f"crop ({y0},{x0})+{ph}x{pw} outside a {h}x{w} image")
            bpp = _PNG_CHANNELS[ctype] * depth // 8
            rows, offsets = index
            b = y0 // rows
            n = y0 + ph - b * rows
            raw = zlib.decompressobj(-15).decompress(idat[offsets[b]:], n * (w * bpp + 1))
            arr = np.frombuffer(raw, np.uint8).reshape(n, w * bpp + 1)[y0 - b * rows:]
            if np.all(arr[:, 0] == 1):
                px = np.cumsum(arr[:, 1:1 + (x0 + pw) * bpp].reshape(ph, x0 + pw, bpp), axis=1, dtype=np.uint8)
                px = px[:, x0:]
                if depth == 16:
                    px = px.reshape(ph, pw * bpp).view(">u2").astype(np.uint16)
                return rgb_channels(px.reshape(ph, pw, _PNG_CHANNELS[ctype]))
    return decode_image(data)[y0:y0 + ph, x0:x0 + pw]
