"""Shard writer, PNG codec and test-split writer: round trips, layouts, seeds, one-line user errors."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import types
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from data_shards import valset, write
from data_shards.imageio import decode_image
from data_shards.pngcrop import decode_crop, encode_png
from data_shards.stream import StreamConfig, TrainStream, load_manifest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _img(rng, h=40, w=48, dtype=np.uint8):
    return (rng.random((h, w, 3)) * np.iinfo(dtype).max).astype(dtype)


def _save(path, a):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if a.dtype == np.uint16:
        with open(path, "wb") as f:
            f.write(encode_png(a))
    else:
        Image.fromarray(a).save(path)


def _members(tar_path):
    out = {}
    with tarfile.open(tar_path) as t:
        for m in t.getmembers():
            out[m.name] = t.extractfile(m).read()
    return out


def _all_samples(shard_dir, stream):
    man = load_manifest(shard_dir)
    samples = {}
    for s in man["streams"][stream]["shards"]:
        for name, data in _members(os.path.join(shard_dir, s["file"])).items():
            key, member = name.split(".", 1)
            samples.setdefault(key, {})[member] = data
    return samples


def _run(argv, capsys):
    rc = write.main(argv)
    return rc, capsys.readouterr().err


@pytest.fixture
def paired(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {}
    for i in range(5):
        g = _img(rng)
        imgs[f"im{i}"] = g
        _save(str(tmp_path / "gt" / f"im{i}.png"), g)
        _save(str(tmp_path / "syn" / f"im{i}.png"), 255 - g)
    for i in range(4):
        _save(str(tmp_path / "real" / f"r{i}.png"), _img(rng, 36, 44))
    return tmp_path, imgs


# ---------------------------------------------------------------------------------------------------------------------
# codec
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_codec_round_trip_and_partial_rows(dtype):
    a = _img(np.random.default_rng(1), 23, 31, dtype)
    b = encode_png(a)
    assert decode_image(b).dtype == dtype and np.array_equal(decode_image(b), a)
    assert np.array_equal(decode_crop(b, 0, 0, 7, 31), a[:7])  # the top rows alone


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_crop_decoding_matches_full_decoding(dtype, channels):
    rng = np.random.default_rng(channels)
    a = _img(rng, 45, 37, dtype)[:, :, :1].repeat(channels, 2)
    a[..., -1] = _img(rng, 45, 37, dtype)[..., 0]
    b = encode_png(a if channels > 1 else a[..., 0], index_rows=7)
    ref = a[:, :, :3] if channels >= 3 else a[:, :, :1].repeat(3, 2)
    assert np.array_equal(decode_image(b), ref)
    for _ in range(10):
        y0, x0 = int(rng.integers(0, 36)), int(rng.integers(0, 29))
        assert np.array_equal(decode_crop(b, y0, x0, 9, 8), ref[y0:y0 + 9, x0:x0 + 8])
    if dtype == np.uint8:  # a standard PNG: Pillow reads it (and ignores the private index chunk)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(b))), a if channels > 1 else a[..., 0])
    foreign = io.BytesIO()  # a PNG without the index: decoded whole (data_shards.imageio), then cropped
    Image.fromarray(ref.astype(np.uint8) if dtype == np.uint8 else ref[..., 0]).save(foreign, format="PNG")
    crop = decode_crop(foreign.getvalue(), 30, 20, 9, 8)
    assert np.array_equal(crop, ref[30:39, 20:28] if dtype == np.uint8 else ref[30:39, 20:28, :1].repeat(3, 2))


def _filtered_png16(a, ftypes):
    """A reference PNG encoder applying the given filter per row (to exercise Sub/Average/Paeth decoding)."""
    h, w, c = a.shape
    bpp, rows = c * 2, a.astype(">u2").view(np.uint8).reshape(h, -1).astype(np.int32)
    out = []
    for r in range(h):
        cur, prev = rows[r], rows[r - 1] if r else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        ft = ftypes[r % len(ftypes)]
        if ft == 0:
            pred = 0
        elif ft == 1:
            pred = left
        elif ft == 2:
            pred = prev
        elif ft == 3:
            pred = (left + prev) >> 1
        else:
            p = left + prev - ul
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, ul))
        out.append(bytes([ft]) + ((cur - pred) & 0xFF).astype(np.uint8).tobytes())

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_png16_decoder_handles_every_filter(channels):
    a = (np.random.default_rng(2).random((11, 9, channels)) * 65535).astype(np.uint16)
    assert np.array_equal(decode_image(_filtered_png16(a, [0, 1, 2, 3, 4])), a[:, :, :3])


def test_decode_gray_rgba_palette_jpeg():
    rng = np.random.default_rng(3)
    rgb = _img(rng, 20, 24)
    for mode in ("L", "LA", "RGBA", "P"):
        buf = io.BytesIO()
        Image.fromarray(rgb).convert(mode).save(buf, format="PNG")
        out = decode_image(buf.getvalue())
        assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    gray16 = (rng.random((10, 12)) * 65535).astype(np.uint16)
    out = decode_image(encode_png(gray16))
    assert out.dtype == np.uint16 and all(np.array_equal(out[..., c], gray16) for c in range(3))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    assert decode_image(buf.getvalue()).shape == (20, 24, 3)


# ---------------------------------------------------------------------------------------------------------------------
# writer: user layouts
# ---------------------------------------------------------------------------------------------------------------------

def test_write_read_round_trip_8bit(paired, capsys):
    d, imgs = paired
    out = str(d / "out")
    rc, err = _run(["--task", "deblur", "--syn", str(d / "syn"), "--gt", str(d / "gt"), "--real", str(d / "real"),
                    "--out", out, "--maxcount", "2"], capsys)
    assert rc == 0, err
    man = load_manifest(out)
    assert man["task"] == "deblur" and man["counts"] == {"syn": 5, "real": 4}
    assert [s["count"] for s in man["streams"]["syn"]["shards"]] == [2, 2, 1]
    for s in man["streams"]["syn"]["shards"]:
        assert s["sha256"] == write._sha256(os.path.join(out, s["file"]))
    # the tar members decode to exactly the source pixels
    for sample in _all_samples(out, "syn").values():
        meta = json.loads(sample["json"])
        stem = os.path.splitext(os.path.basename(meta["source"]["gt.png"]))[0]
        assert np.array_equal(decode_image(sample["gt.png"]), imgs[stem])
        assert np.array_equal(decode_image(sample["syn.png"]), 255 - imgs[stem])
        assert meta["task"] == "deblur" and meta["degradation"] == "user-provided"
    # and so does the reader: each crop is an exact window of its source (no augmentation)
    samples = _all_samples(out, "syn")
    st = TrainStream(StreamConfig(out, patch_size=40, batch_size=5, num_workers=0, augment=False, return_keys=True))
    batch = next(iter(st))
    assert batch["y_s"].shape == batch["x_s"].shape == batch["x_r"].shape == (5, 3, 40, 40)
    for key, y, x in zip(batch["keys"]["syn"], batch["y_s"], batch["x_s"]):
        src = json.loads(samples[key]["json"])["source"]["gt.png"]
        g = torch.from_numpy(imgs[os.path.splitext(os.path.basename(src))[0]].astype(np.float32) / 255)
        g = g.permute(2, 0, 1)
        assert any(torch.equal(y, g[:, :, x0:x0 + 40]) for x0 in range(9))
        assert torch.equal(x, torch.from_numpy((255 - np.round(y.numpy() * 255)).astype(np.float32) / 255))


def test_write_read_round_trip_16bit(tmp_path, capsys):
    rng = np.random.default_rng(4)
    a = _img(rng, 32, 32, np.uint16)
    _save(str(tmp_path / "gt" / "a.png"), a)
    _save(str(tmp_path / "syn" / "a.png"), a[::-1].copy())
    out = str(tmp_path / "out")
    rc, err = _run(["--task", "derain", "--syn", str(tmp_path / "syn"), "--gt", str(tmp_path / "gt"), "--out", out],
                   capsys)
    assert rc == 0, err
    (sample,) = _all_samples(out, "syn").values()
    assert json.loads(sample["json"])["bit_depth"] == 16
    assert np.array_equal(decode_image(sample["gt.png"]), a)
    st = TrainStream(StreamConfig(out, patch_size=32, batch_size=1, num_workers=0, augment=False, with_real=False))
    b = next(iter(st))
    assert torch.equal(b["y_s"][0], torch.from_numpy(a.astype(np.float32) / 65535).permute(2, 0, 1))
    # --bit-depth 8 converts (rounding)
    out8 = str(tmp_path / "out8")
    assert _run(["--task", "derain", "--syn", str(tmp_path / "syn"), "--gt", str(tmp_path / "gt"), "--out", out8,
                 "--bit-depth", "8"], capsys)[0] == 0
    (s8,) = _all_samples(out8, "syn").values()
    assert np.array_equal(decode_image(s8["gt.png"]), np.round(a / 257).astype(np.uint8))


def test_tiling_grid_and_random_crops(paired, capsys):
    assert write.grid_boxes(40, 48, 16, 16, 0) == [(y, x, 16, 16) for y in (0, 16, 24) for x in (0, 16, 32)]
    assert write.grid_boxes(40, 48, 64, 32, 0) == [(0, 0, 40, 48)]  # smaller than a tile: whole
    assert write.grid_boxes(40, 48, 16, 8, 40) == [(0, 0, 40, 48)]  # --tile-min: small images stay whole
    d, _ = paired
    out = str(d / "out")
    assert _run(["--task", "deblur", "--syn", str(d / "syn"), "--gt", str(d / "gt"), "--out", out, "--tile", "16",
                 "--stride", "16"], capsys)[0] == 0
    assert load_manifest(out)["counts"]["syn"] == 5 * 9
    out2 = str(d / "out2")
    assert _run(["--task", "deblur", "--syn", str(d / "syn"), "--gt", str(d / "gt"), "--out", out2, "--tile", "20",
                 "--crops-per-image", "3"], capsys)[0] == 0
    samples = _all_samples(out2, "syn").values()
    assert len(samples) == 15 and all(decode_image(s["gt.png"]).shape == (20, 20, 3) for s in samples)


def test_writer_is_deterministic(paired, capsys):
    d, _ = paired
    shas = []
    for o in ("a", "b"):
        assert _run(["--task", "deblur", "--syn", str(d / "syn"), "--gt", str(d / "gt"), "--out", str(d / o),
                     "--maxcount", "2", "--tile", "16"], capsys)[0] == 0
        shas.append([s["sha256"] for s in load_manifest(str(d / o))["streams"]["syn"]["shards"]])
    assert shas[0] == shas[1]


def test_list_files_gray_rgba_jpeg_and_on_the_fly(tmp_path, capsys):
    rng = np.random.default_rng(5)
    modes = {"g.png": "L", "a.png": "RGBA", "j.jpg": "RGB"}
    for name, mode in modes.items():
        Image.fromarray(_img(rng, 30, 30)).convert(mode).save(tmp_path / name)
    (tmp_path / "list.txt").write_text("# clean\n" + "\n".join(modes) + "\n\n")
    out = str(tmp_path / "out")
    rc, err = _run(["--task", "denoise", "--gt", str(tmp_path / "list.txt"), "--syn-on-the-fly", "--ref",
                    str(tmp_path / "list.txt"), "--out", out], capsys)
    assert rc == 0, err
    man = load_manifest(out)
    assert man["syn_on_the_fly"] and man["streams"]["syn"]["members"] == ["gt.png", "json"]
    assert man["counts"] == {"syn": 3, "ref": 3}
    for s in _all_samples(out, "syn").values():
        assert set(s) == {"gt.png", "json"} and decode_image(s["gt.png"]).shape == (30, 30, 3)


# ---------------------------------------------------------------------------------------------------------------------
# writer: user errors are one line, exit 2
# ---------------------------------------------------------------------------------------------------------------------

def _one_line_error(rc, err, *words):
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_user_errors(paired, capsys):
    d, _ = paired
    s, g, o = str(d / "syn"), str(d / "gt"), str(d / "o")
    _one_line_error(*_run(["--task", "deblur", "--syn", str(d / "nope"), "--gt", g, "--out", o], capsys), "nope")
    os.makedirs(d / "empty")
    _one_line_error(*_run(["--task", "deblur", "--real", str(d / "empty"), "--out", o], capsys), "no images")
    _one_line_error(*_run(["--task", "dehaze", "--syn", s, "--gt", g, "--out", o], capsys), "unknown task")
    os.remove(d / "gt" / "im3.png")
    _one_line_error(*_run(["--task", "deblur", "--syn", s, "--gt", g, "--out", o], capsys), "im3.png", "--syn")
    _one_line_error(*_run(["--task", "deblur", "--syn", s, "--gt", g, "--out", o, "--pair-by", "index"], capsys),
                    "im4.png")
    (d / "gt" / "im3.png").write_bytes(b"not an image")
    _one_line_error(*_run(["--task", "deblur", "--syn", s, "--gt", g, "--out", o], capsys), "cannot read", "im3.png")
    assert not os.path.exists(o)  # the failed run created --out: nothing (not even an empty folder) is left
    os.makedirs(o)  # an (empty) folder the user made stays, without half-written shards
    _one_line_error(*_run(["--task", "deblur", "--syn", s, "--gt", g, "--out", o], capsys), "cannot read", "im3.png")
    assert os.listdir(o) == []
    _one_line_error(*_run(["--task", "deblur", "--gt", g, "--syn-on-the-fly", "--out", o], capsys), "denoise")
    _one_line_error(*_run(["--task", "deblur", "--out", o], capsys), "nothing to write")
    _one_line_error(*_run(["--task", "deblur", "--syn", s, "--out", o], capsys), "--gt")
    _one_line_error(*_run(["--out", o], capsys), "--task")


def test_tiff_with_extra_planes_is_refused(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    os.makedirs(tmp_path / "in")
    tifffile.imwrite(tmp_path / "in" / "five.tif", np.zeros((8, 8, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    _one_line_error(*_run(["--task", "deblur", "--real", str(tmp_path / "in"), "--out", str(tmp_path / "o")],
                          capsys), "unsupported channel count 5")


def test_cli_has_no_traceback_and_help():
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "data_shards.write", "--task", "deblur", "--real", "/nonexistent/x",
                        "--out", "/tmp/never"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    h = subprocess.run([sys.executable, "-m", "data_shards.write", "--help"], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    assert h.returncode == 0 and "--syn-on-the-fly" in h.stdout and "--maxcount" in h.stdout


def test_overwrite_protection_keeps_foreign_files(paired, capsys):
    d, _ = paired
    out = d / "out"
    args = ["--task", "deblur", "--syn", str(d / "syn"), "--gt", str(d / "gt"), "--out", str(out), "--maxcount", "1"]
    assert _run(args, capsys)[0] == 0
    (out / "notes.txt").write_text("mine")
    _one_line_error(*_run(args, capsys), "not empty", "--overwrite")
    assert _run(["--task", "deblur", "--real", str(d / "real"), "--out", str(out), "--overwrite"], capsys)[0] == 0
    assert sorted(os.listdir(out)) == ["manifest.json", "notes.txt", "real-000000.tar"]
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------------------------------
# writer + valset: the offline corpus (stub photos/degrade; the real ones are tested by their owners)
# ---------------------------------------------------------------------------------------------------------------------

def _stub_corpus(tmp_path, monkeypatch, pools="SSSUUEE"):
    rng = np.random.default_rng(6)
    entries = []
    for i, pool in enumerate(pools):
        f = f"p{i}.png"
        Image.fromarray(_img(rng, 150, 170)).save(tmp_path / f)
        # the corpus builder keeps the S/U/E split in "split" ("pool" is the photo's origin); accept the brief's
        # "pool" spelling too
        entries.append({"name": f"photo{i}", "file": f, **({"split": pool, "pool": "P"} if i % 2 else {"pool": pool})})

    def degrade(img, task, domain, rng):
        sigma = rng.uniform(0.01, 0.1)
        out = img + sigma * rng.standard_normal(img.shape).astype(np.float32) * (1 if domain == "source" else 2)
        return out.astype(np.float32), {"name": f"stub-{domain}", "sigma": sigma}

    photos = types.SimpleNamespace(load_manifest=lambda d: entries,
                                   load_photo=lambda p: np.asarray(Image.open(p), dtype=np.float32) / 255)
    monkeypatch.setattr(write, "_corpus_api", lambda: (photos, types.SimpleNamespace(degrade=degrade)))
    return entries, degrade


def test_corpus_streams_and_recorded_seeds(tmp_path, monkeypatch, capsys):
    entries, degrade = _stub_corpus(tmp_path, monkeypatch)
    out = str(tmp_path / "out")
    rc, err = _run(["--corpus", str(tmp_path), "--task", "denoise", "--tile", "64", "--crops-per-image", "2",
                    "--out", out], capsys)
    assert rc == 0, err
    man = load_manifest(out)
    assert man["counts"] == {"syn": 6, "real": 4, "ref": 6}  # pool E is not written here
    for s in _all_samples(out, "syn").values():
        meta = json.loads(s["json"])
        assert meta["split"] == "S" and meta["degradation"] == "stub-source"
        gt = decode_image(s["gt.png"])
        redo, params = degrade(gt.astype(np.float32) / 255, "denoise", "source", np.random.default_rng(meta["seed"]))
        assert params["sigma"] == meta["params"]["sigma"]
        assert np.array_equal(write.quantize(redo, 8), decode_image(s["syn.png"]))
    assert all(json.loads(s["json"])["split"] == "U" for s in _all_samples(out, "real").values())
    out2 = str(tmp_path / "otf")
    assert _run(["--corpus", str(tmp_path), "--task", "denoise", "--syn-on-the-fly", "--no-ref", "--out", out2],
                capsys)[0] == 0
    assert load_manifest(out2)["counts"] == {"syn": 3, "real": 2}


def test_corpus_oracle_pairs_are_the_real_streams_crops(tmp_path, monkeypatch, capsys):
    """--oracle: pool U as (target-degraded, clean) pairs, pixel-identical to the real stream's inputs."""
    _stub_corpus(tmp_path, monkeypatch)
    real, orc = str(tmp_path / "real"), str(tmp_path / "oracle")
    common = ["--corpus", str(tmp_path), "--task", "denoise", "--tile", "64", "--crops-per-image", "2",
              "--shuffle-buffer", "0"]
    assert _run([*common, "--out", real], capsys)[0] == 0
    rc, err = _run([*common, "--oracle", "--out", orc], capsys)
    assert rc == 0, err
    assert load_manifest(orc)["counts"] == {"syn": 4}
    reals = sorted((json.loads(s["json"])["seed"], decode_image(s["real.png"]).tobytes())
                   for s in _all_samples(real, "real").values())
    pairs = [(json.loads(s["json"]), s) for s in _all_samples(orc, "syn").values()]
    assert all(m["split"] == "U" and m["domain"] == "target" for m, _ in pairs)
    assert sorted((m["seed"], decode_image(s["syn.png"]).tobytes()) for m, s in pairs) == reals
    assert all(not np.array_equal(decode_image(s["syn.png"]), decode_image(s["gt.png"])) for _, s in pairs)
    _one_line_error(*_run([*common, "--oracle", "--syn-on-the-fly", "--out", str(tmp_path / "x")], capsys),
                    "--oracle")


def test_corpus_placebo_real_stream_is_source_degraded(tmp_path, monkeypatch, capsys):
    """--real-domain source: the real stream's very crops and seeds, degraded with the source degradation (a
    placebo with no target-domain data); the syn and ref streams are unchanged."""
    entries, degrade = _stub_corpus(tmp_path, monkeypatch)
    real, plac = str(tmp_path / "real"), str(tmp_path / "placebo")
    common = ["--corpus", str(tmp_path), "--task", "denoise", "--tile", "64", "--crops-per-image", "2",
              "--shuffle-buffer", "0"]
    assert _run([*common, "--out", real], capsys)[0] == 0
    rc, err = _run([*common, "--real-domain", "source", "--out", plac], capsys)
    assert rc == 0, err
    assert load_manifest(plac)["counts"] == load_manifest(real)["counts"]
    tgt = {json.loads(s["json"])["tile_index"] + 10 * json.loads(s["json"])["seed"][2]: s
           for s in _all_samples(real, "real").values()}
    src = {json.loads(s["json"])["tile_index"] + 10 * json.loads(s["json"])["seed"][2]: s
           for s in _all_samples(plac, "real").values()}
    assert tgt.keys() == src.keys() and len(src) == 4
    for k, s in src.items():
        m, mt = json.loads(s["json"]), json.loads(tgt[k]["json"])
        assert (m["seed"], m["box"], m["split"]) == (mt["seed"], mt["box"], "U")
        assert (m["domain"], m["degradation"], mt["degradation"]) == ("source", "stub-source", "stub-target")
        assert not np.array_equal(decode_image(s["real.png"]), decode_image(tgt[k]["real.png"]))
    for stream in ("syn", "ref"):
        assert sorted(s[m] for s in _all_samples(plac, stream).values() for m in s if m.endswith(".png")) == \
            sorted(s[m] for s in _all_samples(real, stream).values() for m in s if m.endswith(".png"))
    _one_line_error(*_run([*common, "--real-domain", "source", "--oracle", "--out", str(tmp_path / "x")], capsys),
                    "--real-domain")


def test_valset_corpus_fixed_split(tmp_path, monkeypatch, capsys):
    _stub_corpus(tmp_path, monkeypatch)
    out = str(tmp_path / "val")
    args = ["--corpus", str(tmp_path), "--task", "derain", "--out", out, "--crop", "32", "--crops-per-image", "3",
            "--candidates", "12"]
    assert valset.main(args) == 0
    deg, clean = valset.load_valset(out)
    assert deg.shape == clean.shape == (6, 3, 32, 32) and deg.dtype == torch.float32
    src, _ = valset.load_valset(out, domain="source")
    assert src.shape == deg.shape and not torch.equal(src, deg)
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert {it["name"] for it in man["items"]} == {"photo5", "photo6"} and man["items"][0]["seed"] == [0, 0, 1]
    capsys.readouterr()
    assert valset.main(args) == 2 and "never regenerated" in capsys.readouterr().err
    assert torch.equal(valset.load_valset(out)[0], deg)  # untouched


def test_valset_merge_and_fresh_pool(tmp_path, monkeypatch, capsys):
    """--merge: one split holding two splits' items in order, images byte-identical, each item naming its split;
    pools F, G and H (the fresh test pools) are splits of their own that neither the shards nor pools E/V take from."""
    _stub_corpus(tmp_path, monkeypatch, pools="SSUUEEVFXGXH")  # X: a photo of no split
    base = ["--corpus", str(tmp_path), "--task", "denoise", "--crop", "32", "--crops-per-image", "2", "--candidates",
            "4"]
    e, v, f, g, h, m = (str(tmp_path / k) for k in ("e", "v", "f", "g", "h", "m"))
    for pool, out in (("E", e), ("V", v), ("F", f), ("G", g), ("H", h)):
        assert valset.main([*base, "--pool", pool, "--out", out]) == 0
    names = lambda d: {it["name"] for it in json.load(open(os.path.join(d, "manifest.json")))["items"]}  # noqa
    assert (names(e), names(v), names(f), names(g), names(h)) == ({"photo4", "photo5"}, {"photo6"}, {"photo7"},
                                                                  {"photo9"}, {"photo11"})
    assert valset.main(["--merge", v, e, "--out", m]) == 0
    for dom in ("target", "source"):
        (dm, cm), (dv, cv), (de, ce) = (valset.load_valset(d, dom) for d in (m, v, e))
        assert torch.equal(dm, torch.cat([dv, de])) and torch.equal(cm, torch.cat([cv, ce]))
    items = json.load(open(os.path.join(m, "manifest.json")))["items"]
    assert [it["merged_from"] for it in items] == ["v"] * 2 + ["e"] * 4
    capsys.readouterr()
    assert valset.main(["--merge", v, e, "--out", m]) == 2 and "never regenerated" in capsys.readouterr().err
    assert valset.main(["--merge", v, str(tmp_path / "none"), "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --merge: no manifest.json") and "\n" not in err
    os.remove(os.path.join(e, "degraded", "00001.png"))  # a part missing an image: one line, nothing half-written
    assert valset.main(["--merge", v, e, "--out", str(tmp_path / "m3")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot copy degraded/00001.png" in err and "\n" not in err and os.listdir(tmp_path / "m3") == []
    with open(os.path.join(v, "manifest.json"), "w") as fh:
        fh.write("{not json")
    assert valset.main(["--merge", v, e, "--out", str(tmp_path / "m4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --merge: cannot read") and "\n" not in err
    out = str(tmp_path / "shards")
    assert _run(["--corpus", str(tmp_path), "--task", "denoise", "--tile", "32", "--crops-per-image", "2",
                 "--out", out], capsys)[0] == 0
    assert load_manifest(out)["counts"] == {"syn": 4, "real": 4, "ref": 4}  # S and U only: F and G stay unseen


def test_camera_reference_splits_and_oracle_pairs(tmp_path, monkeypatch, capsys):
    """--target-reference camera: the same noisy crops (and source pairs), the camera's noise-free rendering as the
    clean image; for --oracle pairs too. Other uses are one-line errors."""
    from data_shards import degrade as real_degrade

    _stub_corpus(tmp_path, monkeypatch)
    photos = write._corpus_api()[0]
    monkeypatch.setattr(write, "_corpus_api", lambda: (photos, real_degrade))
    base = ["--corpus", str(tmp_path), "--task", "denoise", "--crop", "32", "--crops-per-image", "2",
            "--candidates", "4"]
    a, b = str(tmp_path / "photo"), str(tmp_path / "cam")
    assert valset.main([*base, "--out", a]) == 0
    assert valset.main([*base, "--target-reference", "camera", "--out", b]) == 0
    (da, ca), (db, cb) = valset.load_valset(a), valset.load_valset(b)
    assert torch.equal(da, db) and not torch.equal(ca, cb)
    assert all(torch.equal(x, y) for x, y in zip(valset.load_valset(a, "source"), valset.load_valset(b, "source")))
    assert {it["reference"] for it in json.load(open(os.path.join(b, "manifest.json")))["items"]} == {"camera"}
    capsys.readouterr()
    bad = [*base, "--target-reference", "camera", "--out", str(tmp_path / "x")]
    bad[3] = "derain"
    assert valset.main(bad) == 2 and "camera-noise target only" in capsys.readouterr().err
    common = ["--corpus", str(tmp_path), "--task", "denoise", "--tile", "32", "--crops-per-image", "2",
              "--shuffle-buffer", "0"]
    po, co = str(tmp_path / "op"), str(tmp_path / "oc")
    assert _run([*common, "--oracle", "--out", po], capsys)[0] == 0
    assert _run([*common, "--oracle", "--target-reference", "camera", "--out", co], capsys)[0] == 0
    by_seed = lambda d: {str(json.loads(s["json"])["seed"]): s for s in _all_samples(d, "syn").values()}  # noqa: E731
    p, c = by_seed(po), by_seed(co)
    assert p.keys() == c.keys() and len(p) == 4
    for k in p:
        assert np.array_equal(decode_image(p[k]["syn.png"]), decode_image(c[k]["syn.png"]))
        assert not np.array_equal(decode_image(p[k]["gt.png"]), decode_image(c[k]["gt.png"]))
        assert json.loads(c[k]["json"])["reference"] == "camera" and "reference" not in json.loads(p[k]["json"])
    _one_line_error(*_run([*common, "--target-reference", "camera", "--out", str(tmp_path / "y")], capsys), "--oracle")


def test_textured_crop_rule():
    img = np.zeros((100, 100, 3), np.float32)
    img[:, 50:] = np.random.default_rng(0).random((100, 50, 3))  # right half textured, left half flat
    boxes = valset.textured_crops(img, 20, 4, 20, np.random.default_rng(1))
    assert len(boxes) == 4 and all(x + 20 > 50 for _, x in boxes)


def test_valset_user_pairs(paired, capsys):
    d, _ = paired
    out = str(d / "val")
    assert valset.main(["--input", str(d / "syn"), "--gt", str(d / "gt"), "--out", out, "--crop", "24"]) == 0
    deg, clean = valset.load_valset(out)
    assert deg.shape == (5, 3, 24, 24) and torch.allclose(deg, 1 - clean)
    capsys.readouterr()
    assert valset.main(["--input", str(d / "syn"), "--gt", str(d / "real"), "--out", str(d / "v2")]) == 2
    assert capsys.readouterr().err.startswith("error:")
