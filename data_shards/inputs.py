"""What the shard writer reads from the user: image lists from folders or list files, syn/gt pairing, images at
their bit depth, and the tile boxes cut from them. Every problem is a `UserError` (one `error:` line, exit 2)."""
from __future__ import annotations

import os

import numpy as np

from .imageio import IMAGE_EXTS
from .imageio import read_image as _read_image


class UserError(Exception):
    """A problem with the user's input: reported as one `error:` line, exit status 2, no traceback."""


# ----------------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------------

def list_inputs(spec: str, flag: str) -> list[tuple[str, str]]:
    """(match key, path) of the images named by a folder (recursive) or a list file, sorted by key."""
    if os.path.isdir(spec):
        out = []
        for root, dirs, files in os.walk(spec):
            dirs.sort()
            for f in files:
                if f.lower().endswith(IMAGE_EXTS) and not f.startswith("."):
                    path = os.path.join(root, f)
                    out.append((os.path.splitext(os.path.relpath(path, spec))[0], path))
        if not out:
            raise UserError(f"{flag}: no images ({', '.join(IMAGE_EXTS)}) found in folder {spec}")
    elif os.path.isfile(spec):
        base = os.path.dirname(os.path.abspath(spec))
        out = []
        with open(spec, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                path = line if os.path.isabs(line) else os.path.join(base, line)
                if not os.path.isfile(path) and os.path.isfile(line):
                    path = line  # a list written relative to the working directory
                if not os.path.isfile(path):
                    raise UserError(f"{flag}: {spec} lists a missing file: {line}")
                out.append((os.path.splitext(os.path.basename(line))[0], path))
        if not out:
            raise UserError(f"{flag}: list file {spec} names no images")
    else:
        raise UserError(f"{flag}: no such folder or list file: {spec}")
    out.sort()
    return out


def match_pairs(syn: list[tuple[str, str]], gt: list[tuple[str, str]], by: str) -> list[tuple[str, str]]:
    """[(syn path, gt path)] by key or by sorted position; the first unmatched file is an error."""
    if by == "index":
        if len(syn) != len(gt):
            longer, flag = (syn, "--syn") if len(syn) > len(gt) else (gt, "--gt")
            first = longer[min(len(syn), len(gt))][1]
            raise UserError(f"--syn has {len(syn)} images but --gt has {len(gt)}: first unmatched {flag} file {first}")
        return [(s[1], g[1]) for s, g in zip(syn, gt)]
    for items, flag in ((syn, "--syn"), (gt, "--gt")):
        keys = [k for k, _ in items]
        dup = next((k for a, k in zip(keys, keys[1:]) if a == k), None)
        if dup is not None:
            raise UserError(f"{flag}: two images share the name {dup!r} (different extensions); use --pair-by index")
    gmap, smap = dict(gt), dict(syn)
    unmatched = sorted([(p, "--syn", "--gt") for k, p in syn if k not in gmap]
                       + [(p, "--gt", "--syn") for k, p in gt if k not in smap])
    if unmatched:
        p, a, b = unmatched[0]
        raise UserError(f"{a} file {p} has no {b} match by name ({len(unmatched)} unmatched; "
                        f"--pair-by index pairs the sorted lists by position)")
    return [(p, gmap[k]) for k, p in syn]


def read_image(path: str) -> np.ndarray:
    """A file → HxWx3 uint8/uint16 (16-bit sources keep 16 bits); any failure is one UserError naming the file."""
    try:
        return _read_image(path)
    except Exception as e:  # noqa: BLE001 - any failure is "this file is not a readable image"
        raise UserError(f"cannot read image {path}: {type(e).__name__}: {e}") from None


def to_depth(a: np.ndarray, depth: int) -> np.ndarray:
    """uint8/uint16 → the requested bit depth (8→16 is exact: ×257; 16→8 rounds)."""
    if depth == 8:
        return a if a.dtype == np.uint8 else ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return a if a.dtype == np.uint16 else a.astype(np.uint16) * 257


def quantize(x: np.ndarray, depth: int) -> np.ndarray:
    """float [0,1] (clipped) → uint8/uint16."""
    peak = 255 if depth == 8 else 65535
    return np.round(np.clip(x, 0, 1) * peak).astype(np.uint8 if depth == 8 else np.uint16)


def grid_boxes(h: int, w: int, tile: int, stride: int, tile_min: int) -> list[tuple[int, int, int, int]]:
    """(y, x, h, w) tiles: a grid with `stride` plus a last tile flush with each border (the official Restormer
    preparation). Whole image when tiling is off, the image is smaller than a tile, or a side is <= tile_min."""
    if tile <= 0 or h < tile or w < tile or min(h, w) <= tile_min:
        return [(0, 0, h, w)]

    def starts(n: int) -> list[int]:
        s = list(range(0, n - tile + 1, stride))
        return s if s[-1] == n - tile else s + [n - tile]

    return [(y, x, tile, tile) for y in starts(h) for x in starts(w)]


def random_boxes(h: int, w: int, tile: int, n: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """n seeded random tile×tile crops (the whole image once when it is smaller than a tile)."""
    if h < tile or w < tile:
        return [(0, 0, h, w)]
    return [(int(rng.integers(h - tile + 1)), int(rng.integers(w - tile + 1)), tile, tile) for _ in range(n)]
