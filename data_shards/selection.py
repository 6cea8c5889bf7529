"""Which files go into which stream: the ground-truth guard on degraded streams, --include/--exclude globs, the
two-column pair lists some data sets publish, and the dry-run report (`daa-shards --dry-run`).

The guard exists because a folder of real degraded images is often downloaded beside its ground truths (SIDD-Medium
keeps `<n>_NOISY_SRGB_010.PNG` and `<n>_GT_SRGB_010.PNG` in every scene folder). A recursive search would put both
into the `real` stream and DAA would adapt towards clean images, with nothing in the output to show it.
"""
from __future__ import annotations

import fnmatch
import math
import os
import re

from .inputs import UserError, grid_boxes, list_inputs, read_image

# Name tokens that mark a file (or one of its folders) as a clean ground truth. Matched whole and case-blind against
# the words of the path below the root the user gave, so `/data/clean_sets/SIDD/` itself never trips it.
GT_TOKENS = frozenset({"gt", "groundtruth", "clean", "target", "targets", "sharp", "mean"})
ALLOW_FLAG = "--allow-gt-names"
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def gt_marker(rel: str) -> str | None:
    """The ground-truth word in a relative path (folders and file stem), or None. Words split at every non-letter/digit
    and at case and digit boundaries: `0001_GT_SRGB_010` → GT, `000gt` → gt, `ValidationGtBlocks` → Gt."""
    stem = os.path.splitext(rel.replace("\\", "/"))[0]
    words = _WORDS.findall(stem)
    for w in words:
        if w.lower() in GT_TOKENS:
            return w
    low = [w.lower() for w in words]
    return next((f"{a} {b}" for a, b in zip(low, low[1:]) if (a, b) == ("ground", "truth")), None)


def check_degraded(flag: str, items: list[tuple[str, str]], allow: bool) -> None:
    """items: (path relative to what the user named, path). A degraded stream holding a ground-truth-looking file is
    one error line that names the first such file, counts them, and says how to include them on purpose."""
    if allow:
        return
    hits = [(rel, p, m) for rel, p in items if (m := gt_marker(rel))]
    if hits:
        rel, p, m = hits[0]
        raise UserError(f"{flag}: {p} looks like a ground truth ({m!r} in its path; {len(hits)} of {len(items)} files "
                        f"do): a degraded stream must not hold clean images. Point {flag} at the degraded files, drop "
                        f"them with --exclude '*{m.split()[0]}*', or pass {ALLOW_FLAG} to include them on purpose")


def rel_to(spec: str, path: str) -> str:
    """The part of a path the guard and the filters look at: below the folder the user named; for a list file's
    entry, below the list's folder, or only its last folder and name when it lies elsewhere (so the folders above a
    data set, `/data/clean_sets/...`, never count)."""
    base = spec if os.path.isdir(spec) else os.path.dirname(os.path.abspath(spec))
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base)).replace(os.sep, "/")
    if rel.startswith("../"):
        rel = "/".join(os.path.abspath(path).replace(os.sep, "/").split("/")[-2:])
    return rel


def _matches(rel: str, pattern: str) -> bool:
    """A glob with a '/' matches the relative path; one without matches the file name or any folder name."""
    if "/" in pattern:
        return fnmatch.fnmatchcase(rel, pattern)
    return any(fnmatch.fnmatchcase(part, pattern) for part in rel.split("/"))


def apply_filters(flag: str, items: list[tuple[str, str]], include: list[str], exclude: list[str]) -> list:
    """Keep items (rel, ...) matching any --include (all when none) and no --exclude; empty result is an error."""
    if not include and not exclude:
        return items
    kept = [it for it in items if (not include or any(_matches(it[0], g) for g in include))
            and not any(_matches(it[0], g) for g in exclude)]
    if not kept:
        raise UserError(f"{flag}: --include {include or '-'} / --exclude {exclude or '-'} leave none of its "
                        f"{len(items)} files")
    return kept


def degraded_inputs(args, spec: str, flag: str) -> list[tuple[str, str]]:
    """--syn/--real's (key, path) list, filtered by --include/--exclude and passed through the ground-truth guard."""
    items = list_inputs(spec, flag)
    kept = apply_filters(flag, [(rel_to(spec, p), k, p) for k, p in items], args.include, args.exclude)
    check_degraded(flag, [(r, p) for r, _, p in kept], args.allow_gt_names)
    return [(k, p) for _, k, p in kept]


def read_pair_list(path: str, root: str, degraded_col: int, name: str, pairs: bool = True) -> list[tuple[str, str]]:
    """(degraded path, gt path) from a published two-column list (one pair per line, paths relative to `root`; a
    leading '/' or './' is taken as relative to root, as SPA-Data's own loader does). A missing file is an error;
    with pairs=False (training lists, whose clean side is not used) only the degraded column is checked."""
    if not os.path.isfile(path):
        raise UserError(f"{name}: list file not found: {path}")
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 2:
                raise UserError(f"{name}: {path} line {n}: expected two paths (degraded and ground truth)")
            cols = [_under(root, p) for p in parts[:2]]
            for c in cols if pairs else cols[degraded_col:degraded_col + 1]:
                if not os.path.isfile(c):
                    raise UserError(f"{name}: {path} line {n} names a missing file: {c}")
            out.append((cols[degraded_col], cols[1 - degraded_col]))
    if not out:
        raise UserError(f"{name}: list file {path} names no pairs")
    return out


def _under(root: str, p: str) -> str:
    if os.path.isabs(p) and os.path.isfile(p):
        return p
    while p.startswith("./"):
        p = p[2:]
    return os.path.join(root, p.lstrip("/"))


# ----------------------------------------------------------------------------------------------------------------------
# Dry run
# ----------------------------------------------------------------------------------------------------------------------

def image_size(path: str) -> tuple[int, int]:
    """(h, w) from the header when Pillow can read it, else by decoding (16-bit colour PNG, odd TIFFs)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return h, w
    except Exception:  # noqa: BLE001 - fall back to the full decoder, whose error names the file
        return read_image(path).shape[:2]


def tiles_per_image(tiling: dict, h: int, w: int) -> int:
    if tiling["crops_per_image"]:
        return 1 if h < tiling["tile"] or w < tiling["tile"] else tiling["crops_per_image"]
    return len(grid_boxes(h, w, tiling["tile"], tiling["stride"] or tiling["tile"], tiling["tile_min"]))


def tiling_rule(t: dict) -> str:
    if t["crops_per_image"]:
        return f"{t['crops_per_image']} random {t['tile']}² crops per image"
    if not t["tile"]:
        return "whole images (no tiling)"
    small = f", images with a side <= {t['tile_min']} px kept whole" if t["tile_min"] else ""
    return f"{t['tile']}² tiles, stride {t['stride'] or t['tile']}, last tile flush with the border{small}"


def report(jobs: dict, tilings: dict, maxcount: int, maxsize: float, encode, notes: dict) -> list[str]:
    """The dry-run lines: per stream, files, three examples, the tiling rule and the tiles it gives (headers are read
    only when the rule depends on the image size), and shards estimated from up to three encoded example tiles."""
    lines = []
    for name, js in jobs.items():
        t = tilings[name]
        first = [j.sources for j in js[:3]]
        lines.append(f"{name}: {len(js)} files ({', '.join(sorted(js[0].sources))} per sample){notes.get(name, '')}")
        for s in first:
            lines.append("  e.g. " + "  +  ".join(f"{m}={p}" for m, p in sorted(s.items())))
        sized = bool(t["tile"])
        tiles = sum(tiles_per_image(t, *image_size(next(iter(j.sources.values())))) for j in js) if sized else len(js)
        lines.append(f"  tiling: {tiling_rule(t)} → {tiles} samples")
        sizes = [encode(s, t) for s in first]
        per = sum(sizes) / len(sizes)
        est = tiles * per
        shards = max(math.ceil(tiles / maxcount), math.ceil(est / maxsize))
        lines.append(f"  estimate: {per / 1e6:.2f} MB per sample (first tile of {len(sizes)} example(s)) → "
                     f"{est / 1e9:.2f} GB in about {shards} shard(s) (--maxcount {maxcount}, --maxsize {maxsize:g})")
    return lines
