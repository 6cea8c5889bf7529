"""The paper's data sets as downloaded (`daa-shards --dataset`, `daa-valset --dataset`), the ground-truth guard on
degraded streams, --include/--exclude and --dry-run, on fixture trees with each data set's real file and folder names
(small random images)."""
from __future__ import annotations

import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from data_shards import datasets, selection, valset, write, write_args
from data_shards.imageio import decode_image
from data_shards.stream import load_manifest

SIDD_SCENES = ("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N", "0003_002_GP_00100_00100_5500_N")
RB_J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"


def _save(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP"}[os.path.splitext(path)[1].lower()]
    Image.fromarray(a).save(path, format=fmt)


def _rand(rng, h, w):
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def _blocky(rng, h, w, k=8):
    """Random k×k blocks: a large image that PNG encodes quickly (the tests are about names and tiles)."""
    return np.repeat(np.repeat(_rand(rng, -(-h // k), -(-w // k)), k, 0), k, 1)[:h, :w]


def _official_tiles(h, w, tile, stride):
    """generate_patches_*.py, per side: np.arange(0, n - tile, stride) plus a last start at n - tile."""
    def n(side):
        return len(list(range(0, side - tile, stride)) + [side - tile])
    return n(h) * n(w)


def _samples(out, stream):
    man = load_manifest(str(out))
    got = {}
    for s in man["streams"][stream]["shards"]:
        with tarfile.open(os.path.join(out, s["file"])) as t:
            for m in t.getmembers():
                key, member = m.name.split(".", 1)
                got.setdefault(key, {})[member] = t.extractfile(m).read()
    return man, got


def _run(argv, capsys, main=write.main):
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def sidd_medium(tmp_path):
    """SIDD_Medium_Srgb/Data/<scene>/<n>_{NOISY,GT}_SRGB_{010,011}.PNG, 520×600 (4 official tiles each)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "SIDD_Medium_Srgb"
    for i, scene in enumerate(SIDD_SCENES):
        for k in ("010", "011"):
            for kind in ("NOISY", "GT"):
                _save(str(root / "Data" / scene / f"{i + 1:04d}_{kind}_SRGB_{k}.PNG"), _blocky(rng, 520, 600))
    return root


# ---------------------------------------------------------------------------------------------------------------------
# SIDD and the guard
# ---------------------------------------------------------------------------------------------------------------------

def test_sidd_medium_real_is_the_noisy_images_only(sidd_medium, tmp_path, capsys):
    out = tmp_path / "shards"
    rc, _, err = _run(["--dataset", "sidd-medium", str(sidd_medium), "--out", str(out), "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(out, "real")
    noisy = sorted(str(p) for p in sidd_medium.glob("Data/*/*_NOISY_SRGB_*.PNG"))
    assert len(noisy) == 6
    assert man["task"] == "denoise" and set(man["counts"]) == {"real"}
    assert man["counts"]["real"] == 6 * _official_tiles(520, 600, 512, 384) == 24
    sources = sorted({json.loads(s["json"])["source"]["real.png"] for s in got.values()})
    assert sources == noisy  # every noisy image, no ground truth
    boxes = {tuple(json.loads(s["json"])["box"]) for s in got.values()}
    assert boxes == {(y, x, 512, 512) for y in (0, 8) for x in (0, 88)}  # stride 384, last tile flush


def test_real_folder_with_ground_truths_fails_in_one_line(sidd_medium, tmp_path, capsys):
    out = tmp_path / "shards"
    data = str(sidd_medium / "Data")
    rc, _, err = _run(["--task", "denoise", "--real", data, "--out", str(out)], capsys)
    assert rc == 2 and not out.exists()
    line = err.strip()
    assert "\n" not in line and line.startswith("error: --real: ")
    named = line.split()[2]
    assert os.path.isfile(named) and "_GT_SRGB_" in named  # names the file
    assert "6 of 12" in line and "--allow-gt-names" in line and "--exclude" in line  # and how to include on purpose
    for extra, n in ((["--include", "*NOISY*"], 6), (["--exclude", "*_GT_*"], 6), (["--allow-gt-names"], 12)):
        o = tmp_path / f"o{len(extra)}{n}{extra[0]}"
        rc, _, err = _run(["--task", "denoise", "--real", data, *extra, "--tile", "32", "--crops-per-image", "1",
                           "--out", str(o), "-q"], capsys)
        assert rc == 0, err
        assert load_manifest(str(o))["counts"]["real"] == n


def test_paired_syn_is_guarded_but_gt_and_on_the_fly_are_not(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(2):
        a = _rand(rng, 24, 32)
        _save(str(tmp_path / "gopro" / "blur" / f"{i:06d}.png"), a)
        _save(str(tmp_path / "gopro" / "sharp" / f"{i:06d}.png"), a)
    # --syn at the sequence folder holds blur/ and sharp/: refused
    rc, _, err = _run(["--task", "deblur", "--syn", str(tmp_path / "gopro"), "--gt", str(tmp_path / "gopro"),
                       "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "--syn:" in err and "sharp" in err and not (tmp_path / "o").exists()
    rc, _, err = _run(["--task", "denoise", "--gt", str(tmp_path / "gopro" / "sharp"), "--syn-on-the-fly", "--out",
                       str(tmp_path / "o2"), "-q"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("rel,word", [
    ("0001_001_S6_00100_00060_3200_L/0001_GT_SRGB_010.PNG", "GT"), ("scene/GT_SRGB_010.PNG", "GT"),
    ("real_test_1000/gt/000gt.png", "gt"), ("target/1.jpg", "target"), ("GOPR0372_07_00/sharp/000047.png", "sharp"),
    ("Canon5D2_5_160_3200_chair_10_mean.JPG", "mean"), ("clean/x.png", "clean"), ("ground_truth/a.png", "ground truth"),
    ("ValidationGtBlocksSrgb.png", "Gt"),
    ("0001_001_S6_00100_00060_3200_L/0001_NOISY_SRGB_010.PNG", None), (f"{RB_J}/scene003/blur/blur_1.png", None),
    ("GOPR0372_07_00/blur/000047.png", None), ("real_world/000/000-0/000-0_0_0.png", None),
    ("Canon5D2_5_160_3200_chair_10_real.JPG", None), ("input/meanwhile_targeted.png", None)])
def test_gt_marker(rel, word):
    assert selection.gt_marker(rel) == word


def test_guard_looks_only_below_the_named_folder(tmp_path, capsys):
    rng = np.random.default_rng(2)
    d = tmp_path / "clean_sets" / "GT_downloads" / "noisy"
    _save(str(d / "a.png"), _rand(rng, 16, 16))
    rc, _, err = _run(["--task", "denoise", "--real", str(d), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    lst = tmp_path / "lists" / "real.txt"  # a list file naming it by absolute path: only its folder and name count
    lst.parent.mkdir()
    lst.write_text(str(d / "a.png") + "\n")
    rc, _, err = _run(["--task", "denoise", "--real", str(lst), "--out", str(tmp_path / "o2"), "-q"], capsys)
    assert rc == 0, err


def test_sidd_small_names(tmp_path, capsys):
    rng = np.random.default_rng(3)
    root = tmp_path / "SIDD_Small_sRGB_Only"
    for scene in SIDD_SCENES[:2]:
        for kind in ("NOISY", "GT"):
            _save(str(root / "Data" / scene / f"{kind}_SRGB_010.PNG"), _rand(rng, 40, 48))
    rc, _, err = _run(["--dataset", "sidd-small", str(root), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    _, got = _samples(tmp_path / "o", "real")
    assert sorted(json.loads(s["json"])["source"]["real.png"] for s in got.values()) == \
        sorted(str(p) for p in root.glob("Data/*/NOISY_SRGB_010.PNG"))
    rc, _, err = _run(["--dataset", "sidd-medium", str(root), "--out", str(tmp_path / "o3")], capsys)
    assert rc == 2 and "NOISY_SRGB" in err  # the Medium rule does not silently take Small's names


# ---------------------------------------------------------------------------------------------------------------------
# DFWB + SIDD in one command, and the dry run
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture
def dfwb(tmp_path):
    """Downloads/{DIV2K,Flickr2K,WaterlooED,BSD400}: two images above 800 px (tiled), three kept whole."""
    rng = np.random.default_rng(4)
    root = tmp_path / "Downloads"
    _save(str(root / "DIV2K" / "0001.png"), _blocky(rng, 900, 1000))
    _save(str(root / "DIV2K" / "0002.png"), _blocky(rng, 700, 1000))  # a side <= 800: whole
    _save(str(root / "Flickr2K" / "000001.png"), _blocky(rng, 820, 830))
    _save(str(root / "WaterlooED" / "00001.bmp"), _rand(rng, 60, 80))
    gray = (rng.random((48, 48)) * 255).astype(np.uint8)
    os.makedirs(root / "BSD400")
    Image.fromarray(gray).save(str(root / "BSD400" / "test_001.png"))
    (root / "BSD400" / "notes.txt").write_text("not an image")
    return root


def test_dfwb_and_sidd_in_one_command(dfwb, sidd_medium, tmp_path, capsys):
    out = tmp_path / "shards"
    rc, _, err = _run(["--dataset", "dfwb", str(dfwb), "--dataset", "sidd-medium", str(sidd_medium), "--out", str(out),
                       "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(out, "syn")
    tiled = _official_tiles(900, 1000, 512, 416) + _official_tiles(820, 830, 512, 416)
    assert (_official_tiles(900, 1000, 512, 416), _official_tiles(820, 830, 512, 416)) == (6, 4)
    assert man["counts"] == {"syn": tiled + 3, "real": 24} and man["syn_on_the_fly"] is True
    assert man["streams"]["syn"]["members"] == ["gt.png", "json"]
    src = {os.path.relpath(json.loads(s["json"])["source"]["gt.png"], dfwb) for s in got.values()}
    assert src == {"DIV2K/0001.png", "DIV2K/0002.png", "Flickr2K/000001.png", "WaterlooED/00001.bmp",
                   "BSD400/test_001.png"}
    whole = [json.loads(s["json"])["box"] for s in got.values()
             if json.loads(s["json"])["source"]["gt.png"].endswith("0002.png")]
    assert whole == [[0, 0, 700, 1000]]
    assert decode_image(next(iter(got.values()))["gt.png"]).shape[2] == 3


def test_dry_run_lists_and_writes_nothing(dfwb, sidd_medium, tmp_path, capsys):
    out = tmp_path / "never"
    rc, stdout, err = _run(["--dataset", "dfwb", str(dfwb), "--dataset", "sidd-medium", str(sidd_medium),
                            "--out", str(out), "--list"], capsys)
    assert rc == 0, err
    assert not out.exists()
    assert "syn: 5 files" in stdout and "real: 6 files" in stdout and "sidd-medium documents 320" in stdout
    assert stdout.count("  e.g. ") == 6 and "_GT_" not in stdout
    assert "→ 13 samples" in stdout and "→ 24 samples" in stdout  # 6 + 4 tiles + 3 whole; 6 × 4
    assert "512² tiles, stride 416" in stdout and "kept whole" in stdout and "shard(s)" in stdout


def test_dfwb_missing_set_is_named(dfwb, tmp_path, capsys):
    for f in (dfwb / "BSD400").iterdir():
        f.unlink()
    (dfwb / "BSD400").rmdir()
    rc, _, err = _run(["--dataset", "dfwb", str(dfwb), "--dry-run"], capsys)
    assert rc == 2 and "BSD400" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------------------
# Deblurring: GoPro (two layouts), RealBlur lists
# ---------------------------------------------------------------------------------------------------------------------

def _gopro_large(root, rng, h=24, w=32):
    for seq in ("GOPR0372_07_00", "GOPR0374_11_00"):
        for f in ("000047.png", "000048.png"):
            sharp = _rand(rng, h, w)
            _save(str(root / "train" / seq / "sharp" / f), sharp)
            _save(str(root / "train" / seq / "blur" / f), 255 - sharp)
            _save(str(root / "train" / seq / "blur_gamma" / f), 255 - sharp // 2)
    _save(str(root / "test" / "GOPR0384_11_00" / "blur" / "000001.png"), _rand(rng, h, w))


@pytest.mark.parametrize("layout", ["GOPRO_Large", "restormer"])
def test_gopro_pairs(layout, tmp_path, capsys):
    rng = np.random.default_rng(5)
    root = tmp_path / "GoPro"
    if layout == "GOPRO_Large":
        _gopro_large(root, rng)
    else:
        for f in ("GOPR0372_07_00-000047.png", "GOPR0372_07_00-000048.png"):
            sharp = _rand(rng, 24, 32)
            _save(str(root / "target" / f), sharp)
            _save(str(root / "input" / f), 255 - sharp)
    rc, _, err = _run(["--dataset", "gopro", str(root), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(tmp_path / "o", "syn")
    assert man["task"] == "deblur" and man["counts"] == {"syn": 4 if layout == "GOPRO_Large" else 2}
    for s in got.values():
        src = json.loads(s["json"])["source"]
        assert os.path.basename(src["syn.png"]) == os.path.basename(src["gt.png"])
        assert ("/blur/" in src["syn.png"] and "/sharp/" in src["gt.png"]) or "/input/" in src["syn.png"]
        assert "blur_gamma" not in src["syn.png"] and "/test/" not in src["syn.png"]
        assert np.array_equal(decode_image(s["syn.png"]), 255 - decode_image(s["gt.png"]))


def test_gopro_frame_gives_eight_tiles(tmp_path, capsys):
    root = tmp_path / "GOPRO_Large"
    flat = np.zeros((720, 1280, 3), np.uint8)
    for seq in ("GOPR0372_07_00",):
        for sub in ("blur", "sharp"):
            _save(str(root / "train" / seq / sub / "000047.png"), flat)
    rc, stdout, err = _run(["--dataset", "gopro", str(root), "--dry-run"], capsys)
    assert rc == 0, err
    assert "syn: 1 files" in stdout and "512² tiles, stride 256" in stdout and "→ 8 samples" in stdout
    assert _official_tiles(720, 1280, 512, 256) == 8


@pytest.fixture
def realblur(tmp_path):
    rng = np.random.default_rng(6)
    root = tmp_path / "RealBlur"
    lines = {"train": [], "test": []}
    for scene, split in (("scene001", "train"), ("scene002", "train"), ("scene003", "test")):
        for m in (1, 2):
            gt = _rand(rng, 30, 26)
            g, b = f"{RB_J}/{scene}/gt/gt_{m}.png", f"{RB_J}/{scene}/blur/blur_{m}.png"
            _save(str(root / g), gt)
            _save(str(root / b), 255 - gt)
            lines[split].append(f"{g} {b}")
    for split, ls in lines.items():
        (root / f"RealBlur_J_{split}_list.txt").write_text("\n".join(ls) + "\n")
    return root


def test_realblur_lists_give_real_and_test_pairs(realblur, tmp_path, capsys):
    rc, _, err = _run(["--dataset", "realblur-j", str(realblur), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(tmp_path / "o", "real")
    srcs = sorted(os.path.relpath(json.loads(s["json"])["source"]["real.png"], realblur) for s in got.values())
    assert srcs == sorted(f"{RB_J}/{sc}/blur/blur_{m}.png" for sc in ("scene001", "scene002") for m in (1, 2))
    val = tmp_path / "val"
    rc, _, err = _run(["--dataset", "realblur-j", str(realblur), "--out", str(val)], capsys, valset.main)
    assert rc == 0, err
    man = json.loads((val / "manifest.json").read_text())
    assert man["task"] == "deblur" and man["count"] == 2
    for it in man["items"]:
        assert "/scene003/blur/" in it["input_file"] and "/scene003/gt/" in it["gt_file"]
        d, c = (decode_image((val / it[k]).read_bytes()) for k in ("degraded", "clean"))
        assert np.array_equal(d, 255 - c)
    assert sorted(os.listdir(val / "degraded")) == sorted(os.listdir(val / "clean"))  # one stem per pair
    (realblur / "RealBlur_J_test_list.txt").write_text(f"{RB_J}/scene003/gt/gt_9.png {RB_J}/scene003/blur/blur_9.png\n")
    rc, _, err = _run(["--dataset", "realblur-j", str(realblur), "--out", str(tmp_path / "v2")], capsys, valset.main)
    assert rc == 2 and "line 1 names a missing file" in err


# ---------------------------------------------------------------------------------------------------------------------
# Deraining: Rain13K, SPA
# ---------------------------------------------------------------------------------------------------------------------

def test_rain13k_pairs_by_name(tmp_path, capsys):
    rng = np.random.default_rng(7)
    root = tmp_path / "Datasets"
    for i in (1, 2, 3):
        t = _rand(rng, 20, 24)
        _save(str(root / "train" / "Rain13K" / "target" / f"{i}.png"), t)
        _save(str(root / "train" / "Rain13K" / "input" / f"{i}.png"), 255 - t)
    rc, _, err = _run(["--dataset", "rain13k", str(root), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(tmp_path / "o", "syn")
    assert man["task"] == "derain" and man["counts"] == {"syn": 3}
    assert all(np.array_equal(decode_image(s["syn.png"]), 255 - decode_image(s["gt.png"])) for s in got.values())
    os.remove(root / "train" / "Rain13K" / "target" / "3.png")
    rc, _, err = _run(["--dataset", "rain13k", str(root), "--out", str(tmp_path / "o2")], capsys)
    assert rc == 2 and "3.png has no partner" in err


def test_spa_rainy_side_and_test_pairs(tmp_path, capsys):
    rng = np.random.default_rng(8)
    root = tmp_path / "SPA"
    train = []
    for f in ("000-0", "000-1"):
        for xy in ("0_0", "0_1"):
            rain, clean = f"real_world/000/{f}/{f}_{xy}.png", f"real_world_gt/000/{f}_{xy}.png"
            _save(str(root / rain), _rand(rng, 16, 16))  # the clean side is not needed (nor extracted) for training
            train.append(f"./{rain} ./{clean}")
    (root / "real_world.txt").write_text("\n".join(train) + "\n")
    test = []
    for i in range(2):
        c = _rand(rng, 18, 20)
        _save(str(root / "real_test_1000" / "rain" / f"{i:03d}.png"), 255 - c)
        _save(str(root / "real_test_1000" / "gt" / f"{i:03d}gt.png"), c)
        test.append(f"/real_test_1000/rain/{i:03d}.png /real_test_1000/gt/{i:03d}gt.png")
    (root / "real_test_1000.txt").write_text("\n".join(test) + "\n")
    rc, _, err = _run(["--dataset", "spa", str(root), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 0, err
    man, got = _samples(tmp_path / "o", "real")
    assert man["counts"] == {"real": 4}
    assert all("/real_world/000/" in json.loads(s["json"])["source"]["real.png"] for s in got.values())
    rc, _, err = _run(["--dataset", "spa", str(root), "--out", str(tmp_path / "val")], capsys, valset.main)
    assert rc == 0, err
    man = json.loads((tmp_path / "val" / "manifest.json").read_text())
    assert man["task"] == "derain" and man["count"] == 2
    assert all(it["gt_file"].endswith("gt.png") and "/rain/" in it["input_file"] for it in man["items"])


# ---------------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------------

def test_dataset_errors_are_one_line(sidd_medium, realblur, tmp_path, capsys):
    cases = [
        (write.main, ["--dataset", "imagenet", str(tmp_path), "--dry-run"], "unknown data set 'imagenet'"),
        (write.main, ["--task", "deblur", "--dataset", "sidd-medium", str(sidd_medium), "--dry-run"],
         "is a denoise data set"),
        (write.main, ["--dataset", "sidd-medium", str(sidd_medium), "--real", str(sidd_medium), "--include",
                      "*NOISY*", "--dry-run"], "gives the real stream"),
        (write.main, ["--dataset", "sidd-medium", str(tmp_path / "nope"), "--dry-run"], "no such folder"),
        (write.main, ["--dataset", "sidd-medium", str(sidd_medium)], "--out is required"),
        (write.main, ["--task", "denoise", "--real", str(sidd_medium), "--include", "*.tif", "--dry-run"],
         "leave none of its 12 files"),
        (valset.main, ["--dataset", "sidd-medium", str(sidd_medium), "--out", str(tmp_path / "v")],
         "--protocol sidd"),
        (valset.main, ["--dataset", "realblur-r", str(realblur), "--out", str(tmp_path / "v")],
         "RealBlur_R_test_list.txt"),
    ]
    for main, argv, want in cases:
        rc, _, err = _run(argv, capsys, main)
        assert rc == 2 and want in err and err.count("\n") == 1, (argv, err)


def test_every_recipe_cites_its_source():
    for name, r in datasets.REGISTRY.items():
        doc = r.collect.__doc__ or ""
        assert len(doc) > 200 and ("Noise-DA" in doc or "SPANet" in doc or "corpus" in doc), name
        assert r.task in write_args.TASKS
