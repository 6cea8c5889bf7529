"""launch/studies/photo_corpus.py: the offline corpus builder with pool P only (no apt, no network), and the
corpus reader (data_shards.corpus)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_shards.write import corpus_split as write_corpus_split
from launch.studies import photo_corpus as photos

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("c") / "photos")
    assert photos.main(["--out", out, "--no-apt", "--max-side", "256"]) == 0
    return out


def test_manifest_pools_disjoint_and_files_match(corpus):
    recs = photos.load_manifest(corpus)
    assert len(recs) >= 5 and all(r["pool"] == "P" for r in recs)
    names = [r["name"] for r in recs]
    assert len(set(names)) == len(names)
    by_split = {k: {r["name"] for r in recs if r["split"] == k} for k in "ESUV"}
    assert set().union(*by_split.values()) == set(names)
    assert sum(map(len, by_split.values())) == len(names)  # disjoint
    assert all(by_split[k] for k in "ESUV")
    assert by_split["E"] == {"coffee", "rocket"}  # the pool-P-only fallback split of notes §3.3
    with open(os.path.join(corpus, "manifest.json")) as f:
        assert json.load(f)["split_scheme"] == "pool_p_fallback"
    for r in recs:
        assert {"file", "package", "author", "licence", "width", "height"} <= set(r)
        img = photos.load_photo(r["path"])
        assert img.dtype == np.float32 and img.shape == (r["height"], r["width"], 3)
        assert max(img.shape[:2]) <= 256 and 0.0 <= img.min() and img.max() <= 1.0


def test_rebuild_is_idempotent(corpus):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs)
    before = {p: os.stat(p).st_mtime_ns for p in files}
    with open(os.path.join(corpus, "manifest.json")) as f:
        manifest = f.read()
    assert photos.main(["--out", corpus, "--no-apt", "--max-side", "256"]) == 0
    after = {p: os.stat(p).st_mtime_ns for p in sorted(os.path.join(d, f) for d, _, fs in os.walk(corpus) for f in fs)}
    assert after == before  # nothing rewritten, nothing added
    with open(os.path.join(corpus, "manifest.json")) as f:
        assert f.read() == manifest


def test_other_max_side_is_refused(corpus, capsys):
    assert photos.main(["--out", corpus, "--no-apt", "--max-side", "128"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_non_corpus_dir_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    script = os.path.join(ROOT, "launch", "studies", "photo_corpus.py")
    r = subprocess.run([sys.executable, script, "--out", str(tmp_path), "--no-apt"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a photo corpus" in lines[0]
    assert os.listdir(tmp_path) == ["notes.txt"]  # nothing written there


def test_full_split_is_disjoint_and_sized():
    # With pool D present (the apt build), the split of notes §3.3 with V held out of U: E 8, S 18, U 13, V 4.
    p_names = [n for n, *_ in photos.POOL_P]
    d_names = [n for items in photos.POOL_D.values() for n, _ in items]
    splits = [photos.split_of(n, "P", True) for n in p_names] + [photos.split_of(n, "D", True) for n in d_names]
    assert len(d_names) == len(set(d_names)) == 35
    assert (splits.count("E"), splits.count("S"), splits.count("U"), splits.count("V")) == (8, 18, 13, 4)
    # pool O (opencv-doc, Amendment 5) is the fresh test pool F, whatever else the corpus holds
    assert len(set(photos.POOL_O)) == 17 and not set(photos.POOL_O) & set(p_names + d_names)
    assert {photos.split_of(n, "O", have) for n in photos.POOL_O for have in (True, False)} == {"F"}
    # pool G (palapeli-data, Amendment 6) is the second fresh test pool G, disjoint from every other pool
    assert len(photos.POOL_G) == 5 and not set(photos.POOL_G) & set(p_names + d_names + photos.POOL_O)
    assert {photos.split_of(n, "G", have) for n in photos.POOL_G for have in (True, False)} == {"G"}
    assert write_corpus_split({"name": "x", "split": "G", "pool": "G"}) == "G"
    # pool H (six more packages, Amendment 7) is the third fresh test pool H, disjoint from every other pool, and no
    # two of its names point at the same file
    h = set(photos.POOL_H)
    assert len(h) == 16 and not h & set(p_names + d_names + photos.POOL_O + list(photos.POOL_G))
    assert len({(pkg, path) for pkg, path, _, _ in photos.POOL_H.values()}) == 16
    assert {photos.split_of(n, "H", have) for n in h for have in (True, False)} == {"H"}
    assert write_corpus_split({"name": "x", "split": "H", "pool": "H"}) == "H"


def test_pool_o_is_downscaled_twice_as_much():
    from PIL import Image

    im = Image.new("RGB", (640, 480))
    assert photos._downscale(im, 1024).size == (640, 480)
    assert photos._downscale(im, 1024, photos.POOL_O_SCALE).size == (320, 240)
    assert photos._downscale(im, 256, photos.POOL_O_SCALE).size == (256, 192)


def test_deb_source_takes_the_photo_not_the_desktop_file_beside_it(tmp_path):
    """palapeli-data keeps `<name>.desktop` next to `<name>.jpg` (and the .desktop sorts first): the photo is taken,
    with the pool-G author; a name with no image file gives None."""
    d = tmp_path / photos._D_DIRS[photos.PALAPELI]
    d.mkdir(parents=True)
    (d / "citrus-fruits.desktop").write_text("[Desktop Entry]")
    (d / "citrus-fruits.jpg").write_bytes(b"jpeg")
    (d / "european-honey-bee.desktop").write_text("[Desktop Entry]")
    src, author = photos._deb_source(str(tmp_path), photos.PALAPELI, "citrus-fruits")
    assert src == str(d / "citrus-fruits.jpg") and author == "US Department of Agriculture"
    assert photos._deb_source(str(tmp_path), photos.PALAPELI, "european-honey-bee")[0] is None


def test_deb_source_of_pool_h_takes_its_file_by_path(tmp_path):
    """A pool-H photo is the one file its entry names inside its package (its folder holds processed copies of the
    same scene beside it); a missing file gives None, with the entry's author either way."""
    pkg, rel, author, _ = photos.POOL_H["gimp-power-lines"]
    f = tmp_path / rel
    f.parent.mkdir(parents=True)
    f.write_bytes(b"jpeg")
    (f.parent / "with-bilateral-smoothing-of-mask.jpg").write_bytes(b"jpeg")  # a processed copy: never taken
    assert photos._deb_source(str(tmp_path), pkg, "gimp-power-lines") == (str(f), author)
    assert photos._deb_source(str(tmp_path), pkg, "gimp-orchard-truck") == (None, "The GIMP Documentation Team")


def test_fetch_debs_keeps_the_packages_that_download(tmp_path, monkeypatch):
    """One package apt cannot find (another release or architecture) costs its own photos only: the batch download
    fails, each package is tried alone, the others are unpacked and the message names the missing one; when none
    downloads, no root is returned."""
    calls = []

    def fake_run(cmd, cwd=None, **kw):
        calls.append(cmd)
        if cmd[:2] == ["apt-get", "download"]:
            if "gone-pkg" in cmd[2:]:
                raise subprocess.CalledProcessError(100, cmd, stderr="E: Unable to locate package gone-pkg\n")
            for p in cmd[2:]:
                open(os.path.join(cwd, f"{p}_1.0_all.deb"), "w").close()
        elif cmd[0] == "dpkg-deb":
            os.makedirs(cmd[3], exist_ok=True)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(photos.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(photos.subprocess, "run", fake_run)
    root, versions, msg = photos._fetch_debs(str(tmp_path / "a"), ["mate-backgrounds", "gone-pkg", "palapeli-data"])
    assert root is not None and versions == {"mate-backgrounds": "1.0", "palapeli-data": "1.0"}
    assert "gone-pkg" in msg and "mate-backgrounds" not in msg and "\n" not in msg
    assert sum(c[:2] == ["apt-get", "download"] for c in calls) == 4  # the batch, then each package alone
    root, versions, msg = photos._fetch_debs(str(tmp_path / "b"), ["gone-pkg"])
    assert root is None and versions == {} and msg.startswith("apt-get download failed (E: Unable to locate")
