"""The fixed target-domain test split: written once, never regenerated (`python -m data_shards.valset --help`).

From the offline corpus (`--corpus DIR --task T --out DIR`): pool-E photos, DAA-mini's textured-crop rule
(notes/data.md §3.3): per photo draw `--candidates` (40) seeded 128² crops, keep — in draw order — those whose mean
horizontal gradient |∂x| is above the median of that photo's candidates, the first `--crops-per-image` (10) of them.
So flat sky and bokeh do not dilute PSNR differences. Each kept crop is stored clean (8-bit), target-degraded
(`degrade(..., "target", rng)`) and, for the "does adaptation cost source performance" check, source-degraded,
each crop with its own recorded seed. The clean crop is quantized before it is degraded, so the pair is exact.

From a real test set (`--input DIR --gt DIR --out DIR`): degraded/clean pairs matched as in `data_shards.write`
(`--pair-by stem|index`), stored as PNG at the source bit depth, whole or center-cropped (`--crop N`).

`--target-reference camera` (camera noise): the target pair's clean image is the camera's noise-free rendering of
the crop (ISP of the noise-free mosaic, as in real noisy/clean pairs) instead of the photo; the photo is kept in
`source_clean/` for the source pair, and the noisy crops are the same as without the option.

`--merge A B … --out DIR`: one split holding the items of several, in order (copied, renumbered; each item records
the split it came from): e.g. a larger validation split made of an old validation and an old, already scored test
split.

Layout: `degraded/NNNNN.png`, `clean/NNNNN.png`, `source/NNNNN.png` (corpus only), `source_clean/NNNNN.png` (camera
reference only), `manifest.json` (one entry per item: photo, crop box, seed, degradation parameters).
`load_valset(dir)` returns the (N,3,H,W) float32 tensors.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import numpy as np
import torch

from .imageio import decode_image
from .imageio import to_float01 as to_float
from .pngcrop import encode_png
from .write import (
    UserError,
    _json_default,
    _profile_kw,
    corpus_split,
    list_inputs,
    match_pairs,
    quantize,
    read_image,
)
from .write_args import TASKS, _Parser

FORMAT = "daa-valset/1"
MANIFEST = "manifest.json"


def textured_crops(img: np.ndarray, crop: int, keep: int, candidates: int,
                   rng: np.random.Generator) -> list[tuple[int, int]]:
    """(y, x) of the textured crops: candidates above the median mean-|∂x|, in draw order (topped up with the next
    most textured candidates if ties at the median leave fewer than `keep`)."""
    h, w = img.shape[:2]
    cand = [(int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))) for _ in range(candidates)]
    gray = img.mean(axis=2)
    score = np.array([np.abs(np.diff(gray[y:y + crop, x:x + crop], axis=1)).mean() for y, x in cand])
    med = np.median(score)
    chosen = [i for i in range(candidates) if score[i] > med][:keep]
    for i in np.argsort(-score, kind="stable"):
        if len(chosen) >= keep:
            break
        if i not in chosen:
            chosen.append(int(i))
    return [cand[i] for i in chosen]


def _prepare(out: str) -> None:
    if os.path.isfile(os.path.join(out, MANIFEST)):
        raise UserError(f"{out} already holds a test split ({MANIFEST}); the split is written once and never "
                        "regenerated: delete the folder by hand to rebuild it")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out {out} exists and is not an empty folder")
    os.makedirs(out, exist_ok=True)


def _save(out: str, sub: str, idx: int, a: np.ndarray) -> str:
    return _write(out, sub, idx, encode_png(a))


def _write(out: str, sub: str, idx: int, png: bytes) -> str:
    rel = f"{sub}/{idx:05d}.png"
    os.makedirs(os.path.join(out, sub), exist_ok=True)
    with open(os.path.join(out, rel), "wb") as f:
        f.write(png)
    return rel


def _discard_images(out: str) -> None:
    """Leave no half-written split behind (the folder itself stays: it was new or empty)."""
    for sub in ("degraded", "clean", "source", "source_clean"):
        d = os.path.join(out, sub)
        if os.path.isdir(d):
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
            os.rmdir(d)


def build_corpus_split(args) -> list[dict]:
    from .write import _corpus_api

    corpus, degrade = _corpus_api()
    if not os.path.isdir(args.corpus):
        raise UserError(f"--corpus: no such folder: {args.corpus}")
    try:
        entries = corpus.load_manifest(args.corpus)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"--corpus: cannot load the photo manifest of {args.corpus}: {type(e).__name__}: {e}") from None
    pool = sorted((e for e in entries if corpus_split(e) == args.pool), key=lambda e: e["name"])
    if not pool:
        raise UserError(f"--corpus: {args.corpus} has no pool-{args.pool} photos")
    items, c = [], args.crop
    for i, e in enumerate(pool):
        path = os.path.join(args.corpus, e["file"])
        try:
            img = np.asarray(corpus.load_photo(path), dtype=np.float32)
        except Exception as ex:  # noqa: BLE001
            raise UserError(f"cannot read corpus photo {path}: {type(ex).__name__}: {ex}") from None
        if img.shape[0] < c or img.shape[1] < c:
            print(f"valset: skipping {e['file']}: smaller than {c}px", file=sys.stderr)
            continue
        for j, (y, x) in enumerate(textured_crops(img, c, args.crops_per_image, args.candidates,
                                                  np.random.default_rng([args.seed, i, 0]))):
            clean = quantize(img[y:y + c, x:x + c], 8)
            seed = [args.seed, i, j + 1]
            item = {"name": e["name"], "file": e["file"], "box": [y, x, c, c], "seed": seed}
            cf = clean.astype(np.float32) / 255
            if args.target_reference == "photo":
                tgt, tp = degrade.degrade(cf, args.task, "target", np.random.default_rng(seed),
                                          **_profile_kw(args, "target"))
            else:
                tgt, ref, tp = degrade.degrade_pair(cf, args.task, "target", np.random.default_rng(seed),
                                                    reference=args.target_reference, **_profile_kw(args, "target"))
            src, sp = degrade.degrade(cf, args.task, "source", np.random.default_rng(seed + [1]))
            k = len(items)
            if args.target_reference != "photo":  # the target pair's clean image is not the photo the source
                item.update(reference=args.target_reference,  # copy was degraded from: keep both
                            source_clean=_save(args.out, "source_clean", k, clean))
                clean = quantize(ref, 8)
            item.update(clean=_save(args.out, "clean", k, clean), degraded=_save(args.out, "degraded", k,
                        quantize(tgt, 8)), source=_save(args.out, "source", k, quantize(src, 8)),
                        degradation=tp.get("name"), params=tp, source_degradation=sp.get("name"), source_params=sp,
                        source_seed=seed + [1])
            items.append(item)
    return items


def _dataset_pairs(args) -> list[tuple[str, str]]:
    """A data set's published test pairs (data_shards.datasets), the degraded side through the ground-truth guard."""
    from .datasets import test_pairs
    from .selection import check_degraded

    name, root = args.dataset
    pairs = test_pairs(name, root)
    check_degraded(f"--dataset {name}", [(os.path.relpath(d, root), d) for d, _ in pairs], False)
    return pairs


def build_user_split(args) -> list[dict]:
    pairs = _dataset_pairs(args) if args.dataset else match_pairs(
        list_inputs(args.input, "--input"), list_inputs(args.gt, "--gt"), args.pair_by)
    items = []
    for k, (dp, gp) in enumerate(pairs):
        d, g = read_image(dp), read_image(gp)
        if d.shape != g.shape:
            raise UserError(f"{dp} and {gp} differ in size")
        box = [0, 0, d.shape[0], d.shape[1]]
        if args.crop:
            c = args.crop
            if min(d.shape[:2]) < c:
                raise UserError(f"{dp} is smaller than --crop {c}")
            y, x = (d.shape[0] - c) // 2, (d.shape[1] - c) // 2
            d, g, box = d[y:y + c, x:x + c], g[y:y + c, x:x + c], [y, x, c, c]
        items.append({"input_file": dp, "gt_file": gp, "box": box, "degraded": _save(args.out, "degraded", k, d),
                      "clean": _save(args.out, "clean", k, g)})
    return items


def build(args) -> dict:
    if args.task is not None and args.task not in TASKS:
        raise UserError(f"unknown task {args.task!r} (choose {', '.join(TASKS)})")
    if args.dataset and args.task is None:
        from .datasets import recipe

        args.task = recipe(args.dataset[0]).task
    if args.dataset and (args.input or args.gt):
        raise UserError("--dataset gives the test pairs itself: drop --input/--gt")
    if bool(args.corpus) == bool(args.input or args.gt or args.dataset):
        raise UserError("give either --corpus (with --task), --input and --gt, or --dataset NAME ROOT")
    if args.corpus and args.task is None:
        raise UserError("--corpus needs --task")
    if not args.corpus and not args.dataset and not (args.input and args.gt):
        raise UserError("--input and --gt go together")
    if args.crop < 0 or args.crops_per_image < 1 or args.candidates < args.crops_per_image:
        raise UserError("need --crop >= 0 and 1 <= --crops-per-image <= --candidates")
    if args.corpus and args.crop == 0:
        raise UserError("--corpus needs --crop > 0")
    if not args.corpus and (args.pool != "E" or args.target_profile != "default" or args.target_reference != "photo"):
        raise UserError("--pool, --target-profile and --target-reference choose corpus photos and their "
                        "degradation: they need --corpus")
    if args.target_reference == "camera" and args.task != "denoise":
        raise UserError("--target-reference camera is defined for the camera-noise target only (--task denoise)")
    if args.corpus:
        from .degrade import target_profile

        try:
            target_profile(args.task, args.target_profile)
        except ValueError as e:
            raise UserError(f"--target-profile: {e}") from None
    _prepare(args.out)
    try:
        items = build_corpus_split(args) if args.corpus else build_user_split(args)
        if not items:
            raise UserError("no test items were produced")
    except BaseException:
        _discard_images(args.out)
        raise
    man = {"format": FORMAT, "kind": "corpus" if args.corpus else "user", "task": args.task, "domain": "target",
           "count": len(items), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "args": vars(args), "items": items}
    with open(os.path.join(args.out, MANIFEST), "w") as f:
        json.dump(man, f, indent=1, default=_json_default)
    print(f"valset: {len(items)} items in {args.out}", file=sys.stderr)
    return man


def load_valset(path: str, domain: str = "target", as_list: bool = False):
    """(degraded, clean) float32 tensors (N,3,H,W) in [0,1]. domain='source' gives the source-degraded copy of a
    corpus split. Splits with mixed image sizes need as_list=True (lists of (3,H,W) tensors)."""
    mp = os.path.join(path, MANIFEST)
    if not os.path.isfile(mp):
        raise FileNotFoundError(f"no {MANIFEST} in {path!r}: write the split with `python -m data_shards.valset`")
    with open(mp) as f:
        man = json.load(f)
    if man.get("format") != FORMAT:
        raise ValueError(f"{mp}: unknown valset format {man.get('format')!r}")
    key = {"target": "degraded", "source": "source"}[domain]
    if any(key not in it for it in man["items"]):
        raise ValueError(f"{path} has no {domain}-degraded images")

    def load(rel: str) -> torch.Tensor:
        with open(os.path.join(path, rel), "rb") as f:
            return torch.from_numpy(to_float(decode_image(f.read()))).permute(2, 0, 1).contiguous()

    deg = [load(it[key]) for it in man["items"]]
    # a target pair with the camera's rendering as its clean image keeps the photo for the source copy
    clean = [load(it.get("source_clean", it["clean"]) if domain == "source" else it["clean"]) for it in man["items"]]
    if as_list:
        return deg, clean
    if len({t.shape for t in deg + clean}) != 1:
        raise ValueError(f"{path}: images differ in size; use load_valset(..., as_list=True) or write with --crop")
    return torch.stack(deg), torch.stack(clean)


def merge(out: str, parts: list[str]) -> dict:
    """Write the items of the splits `parts`, in order, as one split in `out` (files copied and renumbered)."""
    mans = []
    for part in parts:
        mp = os.path.join(part, MANIFEST)
        if not os.path.isfile(mp):
            raise UserError(f"--merge: no {MANIFEST} in {part}")
        try:
            with open(mp) as f:
                mans.append(json.load(f))
        except (OSError, ValueError) as e:
            raise UserError(f"--merge: cannot read {mp}: {type(e).__name__}: {e}") from None
    if len({(m.get("format"), m.get("task")) for m in mans}) != 1 or mans[0].get("format") != FORMAT:
        raise UserError("--merge: the splits differ in format or task")
    kinds = [tuple(sorted(k for k in ("degraded", "clean", "source", "source_clean") if k in it))
             for m in mans for it in m["items"]]
    if len(set(kinds)) != 1:
        raise UserError("--merge: the splits hold different images per item (e.g. one has a camera reference)")
    _prepare(out)
    items = []
    try:
        for part, m in zip(parts, mans):
            for it in m["items"]:
                new = {**it, "merged_from": os.path.basename(os.path.normpath(part))}
                for sub in kinds[0]:
                    try:
                        with open(os.path.join(part, it[sub]), "rb") as f:
                            new[sub] = _write(out, sub, len(items), f.read())
                    except OSError as e:
                        raise UserError(f"--merge: {part}: cannot copy {it[sub]}: {e.strerror or e}") from None
                items.append(new)
    except BaseException:
        _discard_images(out)
        raise
    man = {"format": FORMAT, "kind": "merged", "task": mans[0].get("task"), "domain": "target", "count": len(items),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "args": {"merge": [os.path.abspath(p) for p in parts], "out": out}, "items": items}
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(man, f, indent=1, default=_json_default)
    print(f"valset: {len(items)} items merged into {out}", file=sys.stderr)
    return man


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m data_shards.valset", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  python -m data_shards.valset --corpus corpus/ --task denoise --out val/denoise
  daa-valset --dataset realblur-j RealBlur/ --out val/realblur_j      # the 980 published test pairs
  python -m data_shards.valset --input polyu/noisy.txt --gt polyu/mean.txt --pair-by index \\
      --crop 256 --out val/polyu""")
    p.add_argument("--corpus", help="offline photo corpus: its pool-E photos (or --pool)")
    p.add_argument("--pool", choices=("E", "V", "F", "G", "H"), default="E",
                   help="--corpus: E = the test photos, V = the validation photos, F, G and H = the fresh test pools "
                        "(pairwise disjoint, and disjoint from S and U)")
    p.add_argument("--target-profile", default="default",
                   help="--corpus: named variant of the target degradation (data_shards.degrade.TARGET_PROFILES)")
    p.add_argument("--target-reference", choices=("photo", "camera"), default="photo",
                   help="--corpus: the target pair's clean image: the photo (default), or the camera's noise-free "
                        "rendering of it (denoise: ISP of the noise-free mosaic, as in real noisy/clean pairs)")
    p.add_argument("--input", help="a real test set's degraded images (folder or list file)")
    p.add_argument("--gt", help="their ground truth (folder or list file)")
    p.add_argument("--pair-by", choices=("stem", "index"), default="stem")
    p.add_argument("--dataset", nargs=2, metavar=("NAME", "ROOT"),
                   help="a data set's published test pairs as downloaded: realblur-j, realblur-r, spa "
                        "(data_shards.datasets); score restorations with daa-evaluate --protocol realblur|spa")
    p.add_argument("--task", help="denoise | deblur | derain (required with --corpus)")
    p.add_argument("--merge", nargs="+", metavar="SPLIT", help="write these splits' items as one split")
    p.add_argument("--out", required=True, help="new or empty folder")
    p.add_argument("--crop", type=int, default=None, help="crop size (corpus default 128; user default 0 = whole)")
    p.add_argument("--crops-per-image", type=int, default=10)
    p.add_argument("--candidates", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.merge:
            if args.corpus or args.input or args.gt:
                raise UserError("--merge takes finished splits only (no --corpus, --input or --gt)")
            merge(args.out, args.merge)
            return 0
        if args.crop is None:
            args.crop = 128 if args.corpus else 0
        build(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
