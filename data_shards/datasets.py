"""The paper's data sets as they are downloaded: `daa-shards --dataset NAME ROOT` (repeatable) and
`daa-valset --dataset NAME ROOT`.

| name | task | gives | tiling (the official preparation) | published count |
|---|---|---|---|---|
| `sidd-medium` | denoise | real = `Data/<scene>/<n>_NOISY_SRGB_<k>.PNG` (never `_GT_`) | 512², stride 384 | 320 |
| `sidd-small` | denoise | real = `Data/<scene>/NOISY_SRGB_<k>.PNG` | 512², stride 384 | 160 |
| `dfwb` | denoise | syn = clean DIV2K, Flickr2K, WaterlooED, BSD400 (AWGN added on the fly) | 512²/416, >800 | 8594 |
| `gopro` | deblur | syn = blur, gt = sharp | 512², stride 256 | 2103 |
| `realblur-j`, `realblur-r` | deblur | real = blurred side of the train list; test pairs | whole images | 3758 / 980 |
| `rain13k` | derain | syn = input, gt = target | whole images | 13712 |
| `spa` | derain | real = rainy side of real_world.txt; test pairs | whole images | — / 1000 |

SIDD's test is the validation blocks (`ValidationNoisyBlocksSrgb.mat`, `ValidationGtBlocksSrgb.mat`), scored by
`daa-evaluate --protocol sidd`; nothing here reads them. Each collector's docstring cites where its layout and rule
come from; where a layout is not published it says so. Every degraded stream still goes through the ground-truth guard
(data_shards.selection), so a recipe that picked a clean file would fail rather than train on it.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .imageio import IMAGE_EXTS
from .inputs import UserError
from .selection import read_pair_list

Item = tuple[str, dict]  # (path relative to ROOT, {member: path})


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    collect: Callable[[str], dict[str, list[Item]]]
    tiling: dict = field(default_factory=dict)  # stream → {"tile", "stride", "tile_min"}
    on_the_fly: bool = False  # syn holds clean images only; the reader adds AWGN
    published: dict = field(default_factory=dict)  # stream or "test" → image count in the data set's documentation
    test: Callable[[str], list[tuple[str, str]]] | None = None


def _rel(root: str, p: str) -> str:
    return os.path.relpath(p, root).replace(os.sep, "/")


def _images(folder: str, recursive: bool = False) -> list[str]:
    pat = os.path.join(folder, "**", "*") if recursive else os.path.join(folder, "*")
    return sorted(p for p in glob.glob(pat, recursive=recursive)
                  if p.lower().endswith(IMAGE_EXTS) and os.path.isfile(p))


def _need_dir(path: str, name: str, what: str) -> str:
    if not os.path.isdir(path):
        raise UserError(f"--dataset {name}: no folder {path} ({what})")
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Denoising
# ----------------------------------------------------------------------------------------------------------------------

def _sidd(root: str, name: str, pattern: str) -> dict[str, list[Item]]:
    base = os.path.join(root, "Data") if os.path.isdir(os.path.join(root, "Data")) else root
    rx = re.compile(pattern, re.IGNORECASE)
    files = [p for p in sorted(glob.glob(os.path.join(base, "*", "*"))) if rx.match(os.path.basename(p))]
    if not files:
        raise UserError(f"--dataset {name}: no {pattern} files in {base}/<scene>/ (give the folder holding Data/, "
                        "or Data/ itself)")
    return {"real": [(_rel(root, p), {"real.png": p}) for p in files]}


def sidd_medium(root: str) -> dict[str, list[Item]]:
    """SIDD-Medium sRGB (`SIDD_Medium_Srgb/Data/<scene>/<n>_NOISY_SRGB_<k>.PNG` beside `<n>_GT_SRGB_<k>.PNG`): the
    noisy images only, as the unpaired real stream. Rule from the paper's own preparation script,
    KangLiao929/Noise-DA `Denoising/generate_patches_sidd.py` (Restormer's): `glob(src/*/*.PNG)`, a file with 'NOISY'
    in its name is input, one with 'GT' is target; 512² patches with overlap 128 (stride 384), `p_max = 0` (every
    image tiled), last patch flush with the border. Its GT patches are written but never used for training (spec
    §5.2). ROOT may be `SIDD_Medium_Srgb`, its `Data`, or Restormer's `Downloads/SIDD` (the same scene folders,
    e.g. `0001_001_S6_00100_00060_3200_L`, per zhengchen1999/CAT `Restormer/datasets/README.md`)."""
    return _sidd(root, "sidd-medium", r"^\d+_NOISY_SRGB_\d+\.png$")


def sidd_small(root: str) -> dict[str, list[Item]]:
    """SIDD-Small sRGB (`SIDD_Small_sRGB_Only/Data/<scene>/NOISY_SRGB_<k>.PNG` beside `GT_SRGB_<k>.PNG`, no `<n>_`
    prefix): the noisy images only. The file names are those third-party loaders read (a SIDD-Small loader in the
    search corpus documents `Data/<scene_dir>/NOISY_SRGB_*.PNG`, `GT_SRGB_*.PNG`); the SIDD download page itself was
    not in the corpus. Tiled as SIDD-Medium (generate_patches_sidd.py)."""
    return _sidd(root, "sidd-small", r"^NOISY_SRGB_\d+\.png$")


DFWB_SETS = ("DIV2K", "Flickr2K", "WaterlooED", "BSD400")


def dfwb(root: str) -> dict[str, list[Item]]:
    """DFWB: the clean images of DIV2K, Flickr2K, Waterloo Exploration (WED) and BSD400, one folder each under ROOT
    (`ROOT/{DIV2K,Flickr2K,WaterlooED,BSD400}/*.{png,jpg,bmp}`, not recursive), as the paper's
    KangLiao929/Noise-DA `Denoising/generate_patches_dfwb.py` reads them after its `download_data.py --noise
    gaussian` (Restormer's Google-Drive archives). Tiles: 512², overlap 96 (stride 416), only images larger than
    800 px in both sides (`p_max = 800`); smaller ones (WED, BSD400) stay whole. The syn stream holds these clean
    images; the reader adds AWGN σ ~ U[0, 75] per sample (spec §5.1). Published counts: DIV2K train 800, Flickr2K
    2650, WED 4744, BSD400 400."""
    files = []
    for s in DFWB_SETS:
        d = _need_dir(os.path.join(root, s), "dfwb", f"one of {', '.join(DFWB_SETS)}, as generate_patches_dfwb.py")
        got = [p for p in _images(d) if p.lower().endswith((".png", ".jpg", ".bmp"))]
        if not got:
            raise UserError(f"--dataset dfwb: no .png/.jpg/.bmp images directly in {d} (generate_patches_dfwb.py "
                            "reads <set>/*.png; move a nested HR folder's images up)")
        files += got
    return {"syn": [(_rel(root, p), {"gt.png": p}) for p in files]}


# ----------------------------------------------------------------------------------------------------------------------
# Deblurring
# ----------------------------------------------------------------------------------------------------------------------

def _paired_folders(root: str, name: str, deg: str, gt: str) -> list[Item]:
    a, b = _images(os.path.join(root, deg)), _images(os.path.join(root, gt))
    bmap = {os.path.splitext(os.path.basename(p))[0]: p for p in b}
    out, missing = [], []
    for p in a:
        q = bmap.pop(os.path.splitext(os.path.basename(p))[0], None)
        (out.append((_rel(root, p), {"syn.png": p, "gt.png": q})) if q else missing.append(p))
    if missing or bmap:
        first = missing[0] if missing else next(iter(bmap.values()))
        raise UserError(f"--dataset {name}: {first} has no partner in {deg}/ and {gt}/ by file name "
                        f"({len(missing) + len(bmap)} unmatched)")
    if not out:
        raise UserError(f"--dataset {name}: no images in {os.path.join(root, deg)}")
    return out


def gopro(root: str) -> dict[str, list[Item]]:
    """GoPro training pairs (2103), blurred → syn, sharp → gt. Two layouts: GOPRO_Large as distributed
    (`ROOT/train/<GOPRxxxx_xx_xx>/{blur,blur_gamma,sharp}/<frame>.png`; ROOT may also be `train/` itself; `blur` is
    used, `blur_gamma` not — the folder tree is as third-party READMEs in the corpus show it, e.g.
    BaraaFAbed/Image-Restoration-CV-Project `GoPro/README.md`; the GoPro authors' page was not in the corpus), or
    Restormer's repackaged download (`ROOT/input`, `ROOT/target`), which is what the paper's
    KangLiao929/Noise-DA `Deblurring/generate_patches_gopro.py` reads: 512² patches, overlap 256 (stride 256),
    `p_max = 0`. A 1280×720 frame gives 2 × 4 = 8 tiles."""
    if os.path.isdir(os.path.join(root, "input")) and os.path.isdir(os.path.join(root, "target")):
        return {"syn": _paired_folders(root, "gopro", "input", "target")}
    base = os.path.join(root, "train") if os.path.isdir(os.path.join(root, "train")) else root
    items = []
    for seq in sorted(d for d in glob.glob(os.path.join(base, "*")) if os.path.isdir(os.path.join(d, "blur"))):
        items += _paired_folders(root, "gopro", _rel(root, os.path.join(seq, "blur")),
                                 _rel(root, _need_dir(os.path.join(seq, "sharp"), "gopro", "sharp frames")))
    if not items:
        raise UserError(f"--dataset gopro: neither input/ + target/ nor <sequence>/blur + sharp folders in {root}")
    return {"syn": items}


def _realblur(kind: str) -> tuple[Callable, Callable]:
    def lst(root: str, split: str) -> list[tuple[str, str]]:
        # RealBlur's lists give "<gt path> <blurred path>" per line, relative to ROOT
        name = f"realblur-{kind.lower()}"
        return read_pair_list(os.path.join(root, f"RealBlur_{kind}_{split}_list.txt"), root, 1, name, split == "test")

    def collect(root: str) -> dict[str, list[Item]]:
        return {"real": [(_rel(root, b), {"real.png": b}) for b, _ in lst(root, "train")]}

    def test(root: str) -> list[tuple[str, str]]:
        return lst(root, "test")

    collect.__doc__ = f"""RealBlur-{kind} (`RealBlur-{kind}_..._ref/sceneNNN/{{blur,gt}}/{{blur,gt}}_M.png`): the
    blurred side of the published train list `ROOT/RealBlur_{kind}_train_list.txt` (3758 pairs) → real, whole images
    (the paper's flist holds whole images); the test list (980 pairs) → `daa-valset --dataset realblur-{kind.lower()}`,
    scored with `daa-evaluate --protocol realblur`. List format "<gt> <blurred>" per line, relative to ROOT: the
    paper's KangLiao929/Noise-DA `Deblurring/data_split.py` writes column 0 to the *_gt.flist and column 1 to the
    *_input.flist; rimchang/RealBlur README trains/tests from these lists. ROOT is the folder that holds the lists
    and the `RealBlur-{kind}_...` folder (RealBlur.tar.gz extracted)."""
    return collect, test


def _spa_pairs(root: str, list_name: str, pairs: bool = True) -> list[tuple[str, str]]:
    return read_pair_list(os.path.join(root, list_name), root, 0, "spa", pairs)


def spa(root: str) -> dict[str, list[Item]]:
    """SPA-Data (Wang et al., CVPR 2019): the rainy side → real, whole images. As distributed
    (stevewongv/SPANet `Train_Dataset_README.md`: `real_world.zip.*` + `real_world.txt`, files
    `./real_world/NNN/NNN-f/NNN-f_x_y.png`), `real_world.txt` lists "<rainy> <clean>" per line (SPANet `dataset.py`
    reads column 0 as input, column 1 as ground truth) and only column 0 is taken. Without the list, ROOT/real_world/
    is searched recursively, and otherwise the paper's own layout ROOT/input/<sub-folders> (KangLiao929/Noise-DA
    `Deraining/README.md`, `path_wrapper.py --subfolders`). The clean folder of the training set is not named in the
    published README; the ground-truth guard refuses it if a layout ever mixes it in. Test: `real_test_1000.txt`
    ("<rainy> <clean>", paths with a leading '/' relative to ROOT, as SPANet's TestDataset prefixes '.'), 1000 pairs."""
    lst = os.path.join(root, "real_world.txt")
    if os.path.isfile(lst):
        files = [r for r, _ in _spa_pairs(root, "real_world.txt", pairs=False)]
    else:
        sub = next((os.path.join(root, d) for d in ("real_world", "input") if os.path.isdir(os.path.join(root, d))),
                   None)
        if sub is None:
            raise UserError(f"--dataset spa: no real_world.txt, real_world/ or input/ in {root}")
        files = _images(sub, recursive=True)
        if not files:
            raise UserError(f"--dataset spa: no images under {sub}")
    return {"real": [(_rel(root, p), {"real.png": p}) for p in files]}


def spa_test(root: str) -> list[tuple[str, str]]:
    """SPA test pairs from `real_test_1000.txt`; without it, the paper's `input/` + `target/` folders by sorted
    position (their names differ: third-party code reads `NNN.png` beside `NNNgt.png`)."""
    if os.path.isfile(os.path.join(root, "real_test_1000.txt")):
        return _spa_pairs(root, "real_test_1000.txt")
    a, b = _images(os.path.join(root, "input")), _images(os.path.join(root, "target"))
    if not a or len(a) != len(b):
        raise UserError(f"--dataset spa: no real_test_1000.txt in {root}, and input/ ({len(a)}) and target/ "
                        f"({len(b)}) do not hold the same number of images")
    return list(zip(a, b))


def rain13k(root: str) -> dict[str, list[Item]]:
    """Rain13K training pairs (13,712 in Restormer's compilation): `ROOT/input` → syn, `ROOT/target` → gt, matched
    by file name, whole images (the paper's flists `rain13k_{input,gt}.flist` list the folders as they are). Layout
    from KangLiao929/Noise-DA `Deraining/datasets/README.md` (`train/Rain13K/{input,target}`) and its
    `download_data.py` (Restormer's archive); ROOT may be that `Rain13K` folder or the `Datasets` folder above
    `train/`."""
    for cand in (root, os.path.join(root, "train", "Rain13K")):
        if os.path.isdir(os.path.join(cand, "input")):
            return {"syn": [(_rel(root, it[1]["syn.png"]), it[1])
                            for it in _paired_folders(cand, "rain13k", "input", "target")]}
    raise UserError(f"--dataset rain13k: no input/ and target/ in {root} (or {root}/train/Rain13K)")


def _tiles(tile: int, stride: int, tile_min: int = 0) -> dict:
    return {"tile": tile, "stride": stride, "tile_min": tile_min}


_RBJ, _RBR = _realblur("J"), _realblur("R")
REGISTRY: dict[str, Recipe] = {r.name: r for r in (
    Recipe("sidd-medium", "denoise", sidd_medium, {"real": _tiles(512, 384)}, published={"real": 320}),
    Recipe("sidd-small", "denoise", sidd_small, {"real": _tiles(512, 384)}, published={"real": 160}),
    Recipe("dfwb", "denoise", dfwb, {"syn": _tiles(512, 416, 800)}, on_the_fly=True, published={"syn": 8594}),
    Recipe("gopro", "deblur", gopro, {"syn": _tiles(512, 256)}, published={"syn": 2103}),
    Recipe("realblur-j", "deblur", _RBJ[0], published={"real": 3758, "test": 980}, test=_RBJ[1]),
    Recipe("realblur-r", "deblur", _RBR[0], published={"real": 3758, "test": 980}, test=_RBR[1]),
    Recipe("rain13k", "derain", rain13k, published={"syn": 13712}),
    Recipe("spa", "derain", spa, published={"test": 1000}, test=spa_test),
)}


def add_jobs(args, jobs: dict, make_job) -> dict:
    """The writer's jobs for each `--dataset NAME ROOT`, added to `jobs` (stream → [make_job(stream, i, sources,
    tiling)]). Degraded streams pass the ground-truth guard; the set's tiling applies unless the command line sets
    one."""
    from .selection import check_degraded

    args.dataset_notes = {}
    for name, root in args.dataset or []:
        r = recipe(name)
        if r.task != args.task:
            raise UserError(f"--dataset {name} is a {r.task} data set, but --task is {args.task}")
        if not os.path.isdir(root):
            raise UserError(f"--dataset {name}: no such folder: {root}")
        args.syn_on_the_fly = args.syn_on_the_fly or r.on_the_fly
        for stream, items in r.collect(root).items():
            if stream in jobs:
                raise UserError(f"--dataset {name} gives the {stream} stream, which another input already gives")
            if stream == "real" or (stream == "syn" and not r.on_the_fly):
                check_degraded(f"--dataset {name}", [(rel, s[f"{stream}.png"]) for rel, s in items],
                               args.allow_gt_names)
            tiling = None if args.user_tiling else r.tiling.get(stream, {"tile": 0, "stride": 0, "tile_min": 0})
            jobs[stream] = [make_job(stream, i, s, tiling) for i, (_, s) in enumerate(items)]
            if stream in r.published:
                args.dataset_notes[stream] = f"; {name} documents {r.published[stream]}"
    return jobs


def recipe(name: str) -> Recipe:
    if name not in REGISTRY:
        raise UserError(f"--dataset: unknown data set {name!r} (choose {', '.join(REGISTRY)})")
    return REGISTRY[name]


def test_pairs(name: str, root: str) -> list[tuple[str, str]]:
    """(degraded, ground truth) test pairs of a data set, for daa-valset."""
    r = recipe(name)
    if r.test is None:
        hint = "" if not name.startswith("sidd") else (
            " — SIDD is scored on its validation blocks: daa-evaluate --protocol sidd --weights R.safetensors "
            "--input ValidationNoisyBlocksSrgb.mat --gt ValidationGtBlocksSrgb.mat")
        raise UserError(f"--dataset {name}: no published test pairs here{hint}")
    if not os.path.isdir(root):
        raise UserError(f"--dataset {name}: no such folder: {root}")
    return r.test(root)
