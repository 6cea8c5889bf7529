"""Offline clean-photo corpus for DAA-mini: gather, downscale, record licences and split pools (notes/data.md §1, §3.3).

Two pools of clean photographs that need no dataset download:
- pool P: photos bundled inside PyPI wheels (scikit-image; scikit-learn's china/flower and matplotlib's grace_hopper
  when those packages import, skipped quietly otherwise);
- pool D: 35 hand-picked wallpaper photographs from 4 Debian packages, fetched with `apt-get download` into a temporary
  directory and unpacked with `dpkg-deb -x` (nothing is installed). Without apt, the corpus is pool P only;
- pool O: 17 natural photos of Debian's opencv-doc examples, split F: a fresh test pool added after four rounds
  had scored pool E (docs/RESULTS.md, Amendment 5). Downscaled 2× more than the others (they are small, and their
  film grain and JPEG blocks would otherwise stay in the "clean" image);
- pool G: the 5 natural photos of Debian's palapeli-data puzzle collection, split G: a second fresh test pool
  added after round 5 and Exploration 1 (docs/RESULTS.md, Amendment 6), downscaled 2× more, as pool O.
- pool H: 16 natural photos from six more Debian packages (digikam-data, gimp-help-en, hugin-data, puzzle-jigsaw,
  scribus-template, sddm-theme-maldives), split H: a third fresh test pool (Amendment 7), downscaled 2× more.

Each photo is downscaled to a maximum side (PIL BOX, which also averages away sensor noise and JPEG artefacts) and
saved as PNG; `manifest.json` records per photo its file, source package, author, licence, size and split pool
(E = held-out test, S = source pairs, U = unpaired target, V = validation, F, G and H = fresh test pools). Only this
explicit build step touches the network; data_shards.corpus reads the result (local files only).

    python launch/studies/photo_corpus.py --out .data/photos [--max-side 1024] [--no-apt]
"""
from __future__ import annotations

import argparse
import glob
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

from PIL import Image

if __package__ in (None, ""):  # run as a script from a checkout: the repository root holds the packages
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data_shards.corpus import MANIFEST, load_manifest, load_photo  # noqa: E402,F401  (re-exported for the studies)

MARKER = ".daa-photo-corpus"  # written first, so an interrupted build is still recognised as ours on re-run
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------
# Pool P: (name, package, author, licence) as notes/data.md §1.1 and the packages' docstrings/README state them.
POOL_P = [
    ("astronaut", "scikit-image", "NASA (Eileen Collins portrait)", "public domain"),
    ("chelsea", "scikit-image", "Stefan van der Walt", "CC0"),
    ("coffee", "scikit-image", "Rachel Michetti", "CC0"),
    ("rocket", "scikit-image", "SpaceX", "public domain"),
    ("motorcycle_left", "scikit-image", "Middlebury 2014 stereo benchmark", "no licence stated"),
    ("china", "scikit-learn", "danielbuechele (Flickr)", "CC-BY-2.0"),
    ("flower", "scikit-learn", "vultilion (Flickr)", "CC-BY-2.0"),
    ("grace_hopper", "matplotlib", "US Navy", "public domain"),
]

# Pool D: package -> [(name, licence)], notes/data.md §1.2. Authors of the lomiri photos are in their file names;
# plasma authors come from each wallpaper's metadata.json; the notes name none for mate-backgrounds.
_L16 = "lomiri-wallpapers-16.04"
POOL_D: dict[str, list[tuple[str, str]]] = {
    _L16: [
        ("Bridge_by_Sander_Klootwijk", "CC-BY-SA-4.0"),
        ("Dragonfly_by_Bolly", "CC-BY-SA-4.0"),
        ("Picture_0B_by_freespace", "CC-BY-4.0"),
        ("Picture_1A_by_freespace", "CC-BY-4.0"),
        ("Wine_by_Jakkub_Mede", "CC-BY-4.0"),
        ("aitzgorri_by_Aitzol_Berasategi", "CC-BY-4.0"),
        ("friends_by_Aitzol_Berasategi", "CC-BY-4.0"),
        ("life_by_Aitzol_Berasategi", "CC-BY-4.0"),
        ("picosdeeuropa_by_Aitzol_Berasategi", "CC-BY-4.0"),
        ("seeding_by_Clements_Engelhardt", "CC0-1.0"),
        ("sunset_by_Aitzol_Berasategi", "CC-BY-4.0"),
    ],
    "lomiri-wallpapers-20.04": [("Kleiber_by_Lukas_Baubkus", "CC-BY-SA-3.0")],
    "mate-backgrounds": [
        (n, "GPL-2+")
        for n in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
                  "TwoWings", "Wood", "YellowFlower")
    ],
    "plasma-workspace-wallpapers": [
        (n, "LGPL-3")
        for n in ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                  "Kite", "OneStandsOut", "Path", "summer_1am")
    ],
}
# Pool O (split F), fixed in Amendment 5 before anything was scored on it: one of each stereo/sequence pair; drawings,
# renders, grayscale and visibly noisy phone shots left out (notes/data.md §1.2).
OPENCV_DOC = "opencv-doc"
POOL_O = ["aero1", "aloeL", "apple", "baboon", "board", "building", "butterfly", "chicky_512", "fruits", "graf1",
          "home", "leuvenA", "messi5", "orange", "rubberwhale1", "smarties", "squirrel_cls"]
POOL_O_LICENCE = "Apache-2.0 AND BSD-3-Clause (OpenCV; several are classic USC-SIPI test images of unclear origin)"
POOL_O_SCALE = 2  # extra downscale factor of pools O and G
# Pool G (split G), fixed in Amendment 6 before anything was scored on it: every photo of palapeli-data's puzzle
# collection (the package's other images are icons and textures). name -> (author, licence), from each photo's
# .desktop file. Small JPEGs (1.0-2.1 MP), so downscaled 2x as pool O is.
PALAPELI = "palapeli-data"
POOL_G = {"castle-maintenon": ("Eric Pouhier", "GFDL"), "cincinnati-bridge": ("Derek Jensen", "public domain"),
          "citrus-fruits": ("US Department of Agriculture", "public domain"),
          "european-honey-bee": ("John Severns", "public domain"),
          "panther-chameleon-female": ("B. Navez and others", "GFDL")}
# Pool H (split H), fixed in Amendment 7 before anything was scored on it: every distinct natural photograph with a
# short side >= 480 px among the JPEGs of six packages not used before (screenshots, processed copies of a scene
# already taken, a side-by-side comparison, drawings and textures left out). name -> (package, file inside the
# package, author, licence), from each package's debian/copyright. Downscaled 2x as pools O and G.
_GIMP_TM = "usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping/"
_HUGIN = "usr/share/hugin/xrc/data/help_en_EN/"
_SCRIBUS = "usr/share/scribus/templates/"
_GIMP_LIC = ("The GIMP Documentation Team", "GFDL-1.2+")
_SCRIBUS_LIC = ("Riku Leino", "public domain")
_HUGIN_LIC = ("hugin project", "GPL-2+")
_PEXELS = ("Pexels", "CC0-1.0")
POOL_H: dict[str, tuple[str, str, str, str]] = {
    "digikam-lake": ("digikam-data", "usr/share/digikam/about/images/body-background.jpg", "digiKam project", "GPL-2+"),
    "gimp-orchard-truck": ("gimp-help-en", _GIMP_TM + "apple-orchard-truck-from-camera.jpg", *_GIMP_LIC),
    "gimp-power-lines": ("gimp-help-en", _GIMP_TM + "power-lines.jpg", *_GIMP_LIC),
    "hugin-forest": ("hugin-data", _HUGIN + "CA_fringes00.jpg", *_HUGIN_LIC),
    "hugin-building": ("hugin-data", _HUGIN + "CA_tCA00.jpg", *_HUGIN_LIC),
    "hugin-medinet-habu-fisheye": ("hugin-data", _HUGIN + "Medinet_habu_horizontal_fisheye.jpg", *_HUGIN_LIC),
    "jigsaw-cat": ("puzzle-jigsaw", "usr/share/puzzle-jigsaw/samples/cat-animal-cat-portrait-mackerel.jpg", *_PEXELS),
    "jigsaw-tiger": ("puzzle-jigsaw", "usr/share/puzzle-jigsaw/samples/pexels-photo-302304.jpeg", *_PEXELS),
    "scribus-eclipse": ("scribus-template", _SCRIBUS + "br2/brightness.jpg", *_SCRIBUS_LIC),
    "scribus-halfmoon": ("scribus-template", _SCRIBUS + "br2/halfmoon.jpg", *_SCRIBUS_LIC),
    "scribus-moon": ("scribus-template", _SCRIBUS + "br2/moon.jpg", *_SCRIBUS_LIC),
    "scribus-canyon": ("scribus-template", _SCRIBUS + "br2/nature.jpg", *_SCRIBUS_LIC),
    "scribus-sunset": ("scribus-template", _SCRIBUS + "br2/sunset.jpg", *_SCRIBUS_LIC),
    "scribus-moon-branches": ("scribus-template", _SCRIBUS + "cal2/moon.jpg", *_SCRIBUS_LIC),
    "scribus-pizza": ("scribus-template", _SCRIBUS + "menu2/pizza.jpg", *_SCRIBUS_LIC),
    "maldives-jetty": ("sddm-theme-maldives", "usr/share/sddm/themes/maldives/background.jpg", "Nevit Dilmen",
                       "CC-BY-3.0"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".ppm", ".bmp")
_D_DIRS = {_L16: "usr/share/backgrounds", "lomiri-wallpapers-20.04": "usr/share/backgrounds",
           "mate-backgrounds": "usr/share/backgrounds/mate/nature",
           OPENCV_DOC: "usr/share/doc/opencv-doc/examples/data", PALAPELI: "usr/share/palapeli/collection"}

# Splits, notes/data.md §3.3. E is fixed by the pilot. S takes every other remaining photo of each package, 4 each
# from lomiri-16.04, mate and plasma (Kleiber, the only lomiri-20.04 photo, goes to U); the remaining 17 go to U.
SPLIT_E = {"FreshFlower", "Kite", "life_by_Aitzol_Berasategi", "Picture_1A_by_freespace", "ColorfulCups", "Storm",
           "coffee", "rocket"}
SPLIT_S_D = {"Bridge_by_Sander_Klootwijk", "Picture_0B_by_freespace", "aitzgorri_by_Aitzol_Berasategi",
             "picosdeeuropa_by_Aitzol_Berasategi", "Aqua", "Dune", "GreenMeadow", "RainDrops", "BytheWater",
             "DarkestHour", "FallenLeaf", "OneStandsOut"}
# V: validation photos, held out of U: hyper-parameters are chosen on crops of these, never on E.
# One lomiri-16.04, one mate and two plasma photos, textured ones (the textured-crop rule needs structure).
SPLIT_V = {"Wine_by_Jakkub_Mede", "Garden", "ColdRipple", "Path"}
# Pool-P-only fallback (no apt): smoke tests and CI only, too small for claims.
FALLBACK = {"coffee": "E", "rocket": "E", "astronaut": "S", "china": "S", "grace_hopper": "S",
            "chelsea": "U", "flower": "U", "motorcycle_left": "V"}


def split_of(name: str, pool: str, have_pool_d: bool) -> str:
    """Split pool ('E', 'S', 'U', 'V', 'F', 'G' or 'H') of a photo; pool P uses the fallback split when pool D is
    absent."""
    if pool == "O":
        return "F"
    if pool in ("G", "H"):
        return pool
    if not have_pool_d:
        return FALLBACK[name]
    if name in SPLIT_E:
        return "E"
    if name in SPLIT_V:
        return "V"
    if pool == "P" or name in SPLIT_S_D:
        return "S"
    return "U"


# ---------------------------------------------------------------------------------------------------------------
def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as im:  # closes the (up to 20 MP) source file as soon as it is decoded
        return im.convert("RGB")  # Grey is a grayscale JPEG


def _downscale(im: Image.Image, max_side: int, factor: int = 1) -> Image.Image:
    im = im.convert("RGB")
    s = min(max_side / max(im.size), 1 / factor)
    if s < 1:
        im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.BOX)
    return im


def _pool_p_sources() -> list[tuple[str, str, str, str, Callable[[], Image.Image]]]:
    """(name, package, author, licence, opener) for every pool-P photo whose package imports."""
    out = []
    meta = {n: (pkg, a, lic) for n, pkg, a, lic in POOL_P}
    import skimage.data as skd

    for n in ("astronaut", "chelsea", "coffee", "rocket"):
        out.append((n, *meta[n], lambda n=n: Image.fromarray(getattr(skd, n)())))
    out.append(("motorcycle_left", *meta["motorcycle_left"], lambda: Image.fromarray(skd.stereo_motorcycle()[0])))
    try:  # optional: scikit-learn's two Flickr photos
        from sklearn.datasets import load_sample_image

        for n in ("china", "flower"):
            out.append((n, *meta[n], lambda n=n: Image.fromarray(load_sample_image(f"{n}.jpg"))))
    except ImportError:
        pass
    try:  # optional: matplotlib's sample photo
        import matplotlib.cbook as cbook

        def _hopper() -> Image.Image:
            with cbook.get_sample_data("grace_hopper.jpg") as f:
                return Image.open(f).convert("RGB")

        cbook.get_sample_data("grace_hopper.jpg").close()  # fail here, not later, if the file is not bundled
        out.append(("grace_hopper", *meta["grace_hopper"], _hopper))
    except (ImportError, OSError, ValueError):
        pass
    return out


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _apt_download(debs: str, packages: list[str]) -> str | None:
    """`apt-get download packages` into debs; None when it worked, else apt's last error line."""
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True, capture_output=True, text=True,
                       timeout=900)
        return None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        err = getattr(e, "stderr", None) or str(e)
        last = [ln for ln in str(err).strip().splitlines() if ln.strip()][-1:] or [str(e)]
        return last[0].strip()


def _fetch_debs(workdir: str, packages: list[str]) -> tuple[str | None, dict[str, str], str]:
    """apt-get download + dpkg-deb -x `packages` into workdir. Returns (root or None, versions, message); the
    message names the packages that could not be downloaded when the others could."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None, {}, "apt-get/dpkg-deb not found"
    debs = os.path.join(workdir, "debs")
    os.makedirs(debs)
    err, failed = _apt_download(debs, packages), []
    if err is not None:
        # one package missing from this release or architecture must not cost the photos of all the others
        failed = [p for p in packages if _apt_download(debs, [p]) is not None] if len(packages) > 1 else packages
        if len(failed) == len(packages):
            return None, {}, f"apt-get download failed ({err}; an `apt-get update` may help)"
    root = os.path.join(workdir, "root")
    versions = {}
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True, capture_output=True, timeout=300)
        pkg, ver = os.path.basename(deb).split("_")[:2]
        versions[pkg] = ver.replace("%3a", ":")
    return root, versions, (f"apt-get download failed for {', '.join(failed)} ({err})" if failed else "")


def _deb_source(root: str, pkg: str, name: str) -> tuple[str | None, str | None]:
    """(image path, author) of one pool-D, -O, -G or -H photo inside the unpacked tree."""
    if name in POOL_H:
        src = os.path.join(root, POOL_H[name][1])
        return (src if os.path.isfile(src) else None), POOL_H[name][2]
    if pkg == "plasma-workspace-wallpapers":
        base = os.path.join(root, "usr/share/wallpapers", name)
        # One real file per wallpaper; the other size names are symlinks to it.
        files = [p for p in glob.glob(os.path.join(base, "contents/images/*")) if not os.path.islink(p)]
        author = None
        try:
            with open(os.path.join(base, "metadata.json"), encoding="utf-8") as f:
                author = json.load(f)["KPlugin"]["Authors"][0]["Name"]
        except (OSError, KeyError, IndexError, ValueError):
            pass
        return (max(files, key=os.path.getsize) if files else None), author
    hits = sorted(h for h in glob.glob(os.path.join(root, _D_DIRS[pkg], name + ".*"))
                  if h.lower().endswith(IMAGE_SUFFIXES))  # palapeli keeps a .desktop file beside each photo
    return (hits[0] if hits else None), POOL_G[name][0] if pkg == PALAPELI else _author_in_name(name)


def _author_in_name(name: str) -> str | None:
    """Lomiri wallpapers are named `<title>_by_<First_Last>`."""
    return name.split("_by_", 1)[1].replace("_", " ") if "_by_" in name else None


# ---------------------------------------------------------------------------------------------------------------
class CorpusError(Exception):
    """A one-line, user-facing reason the corpus cannot be built."""


def _claim_dir(out: str, max_side: int) -> dict:
    """Make `out` ours (or recognise it as ours) and return the previous manifest, if any."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CorpusError(f"--out {out} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MARKER)):
        raise CorpusError(f"--out {out} exists, is not empty and is not a photo corpus (no {MARKER}); "
                          "pass a new or empty directory")
    os.makedirs(out, exist_ok=True)
    marker = os.path.join(out, MARKER)
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as f:
            f.write("DAA-mini photo corpus built by `launch/studies/photo_corpus.py`.\n")
    ignore = os.path.join(out, ".gitignore")
    if not os.path.exists(ignore):  # derived, licensed data (30 MB): keep it out of git wherever --out points
        with open(ignore, "w", encoding="utf-8") as f:
            f.write("# created by launch/studies/photo_corpus.py\n*\n")
    prev: dict = {}
    if os.path.exists(os.path.join(out, MANIFEST)):
        with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
            prev = json.load(f)
        if prev.get("max_side") != max_side:
            raise CorpusError(f"--out {out} was built with --max-side {prev.get('max_side')}, not {max_side}; "
                              "use another --out")
    return prev


def _save(out: str, rel: str, opener: Callable[[], Image.Image], max_side: int,
          factor: int = 1) -> tuple[int, int, bool]:
    """Write one PNG unless it already exists. Returns (width, height, written)."""
    dst = os.path.join(out, rel)
    if os.path.exists(dst):
        with Image.open(dst) as im:
            return im.size[0], im.size[1], False
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    im = _downscale(opener(), max_side, factor)
    tmp = dst + ".tmp"
    im.save(tmp, format="PNG")
    os.replace(tmp, dst)  # never leave a truncated PNG that a re-run would take for a finished one
    return im.size[0], im.size[1], True


def build(out: str, max_side: int = 1024, use_apt: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """Build (or complete) the corpus in `out`; returns the manifest's photo records."""
    prev = _claim_dir(out, max_side)
    prev_by_name = {p["name"]: p for p in prev.get("photos", [])}
    records: list[dict] = []
    written = 0

    for name, pkg, author, lic, opener in _pool_p_sources():
        w, h, new = _save(out, f"p/{name}.png", opener, max_side)
        written += new
        records.append({"name": name, "file": f"p/{name}.png", "pool": "P", "package": pkg,
                        "package_version": _dist_version(pkg), "author": author, "licence": lic,
                        "width": w, "height": h})

    # (package, name, licence, pool): pool D, then pools O and G
    d_names = [(pkg, n, lic, "D") for pkg, items in POOL_D.items() for n, lic in items]
    d_names += [(OPENCV_DOC, n, POOL_O_LICENCE, "O") for n in POOL_O]
    d_names += [(PALAPELI, n, lic, "G") for n, (_, lic) in POOL_G.items()]
    d_names += [(pkg, n, lic, "H") for n, (pkg, _, _, lic) in POOL_H.items()]
    rel_of = {"D": "d/{}.png", "O": "o/{}.png", "G": "g/{}.png", "H": "h/{}.png"}
    missing = sorted({pkg for pkg, n, _, pool in d_names
                      if not os.path.exists(os.path.join(out, rel_of[pool].format(n)))})
    root, versions = None, {}
    with tempfile.TemporaryDirectory(prefix="daa-photos-") as tmp:
        if missing and use_apt:
            root, versions, msg = _fetch_debs(tmp, missing)  # only the packages that still miss a photo
            if root is None:
                log(f"photos: pools D/O/G/H unavailable ({msg}); continuing without them")
            else:
                if msg:
                    log(f"photos: {msg}; their photos are skipped, a re-run tries them again")
                _keep_copyright_files(root, out)
        elif missing:
            log("photos: --no-apt given; pools D, O, G and H skipped (pool P only)")
        for pkg, name, lic, pool in d_names:
            rel = rel_of[pool].format(name)
            old = prev_by_name.get(name, {})
            fetched = root is not None and pkg in versions  # only packages that still missed a photo are fetched
            src, author = _deb_source(root, pkg, name) if fetched else (None, old.get("author", _author_in_name(name)))
            if not os.path.exists(os.path.join(out, rel)):
                if src is None:
                    if root is not None:
                        log(f"photos: {name} not found in {pkg}; skipped")
                    continue
                author = author if author is not None else old.get("author")
            factor = POOL_O_SCALE if pool in ("O", "G", "H") else 1
            w, h, new = _save(out, rel, lambda s=src: _open_rgb(s), max_side, factor)
            written += new
            records.append({"name": name, "file": rel, "pool": pool, "package": pkg,
                            "package_version": versions.get(pkg, old.get("package_version")), "author": author,
                            "licence": lic, "width": w, "height": h})

    have_d = any(r["pool"] == "D" for r in records)
    for r in records:
        r["split"] = split_of(r["name"], r["pool"], have_d)
    manifest = {"format": FORMAT_VERSION, "max_side": max_side,
                "split_scheme": "full" if have_d else "pool_p_fallback", "photos": records}
    _write_json(os.path.join(out, MANIFEST), manifest)
    counts = {k: sum(r["split"] == k for r in records) for k in "ESUVFGH"}
    n = {k: sum(r["pool"] == k for r in records) for k in "PDOGH"}
    log(f"photos: {len(records)} photos (pool P {n['P']}, pool D {n['D']}, pool O {n['O']}, pool G {n['G']}, "
        f"pool H {n['H']}; "
        f"{written} newly written) "
        f"-> " + " / ".join(f"{k} {v}" for k, v in counts.items()) + f" in {out}")
    return load_manifest(out)


def _keep_copyright_files(root: str, out: str) -> None:
    """Keep each package's debian/copyright next to the derivatives (CC-BY(-SA) and GPL need the attribution)."""
    os.makedirs(os.path.join(out, "licences"), exist_ok=True)
    for pkg in [*POOL_D, OPENCV_DOC, PALAPELI, *sorted({v[0] for v in POOL_H.values()})]:
        src = os.path.join(root, "usr/share/doc", pkg, "copyright")
        dst = os.path.join(out, "licences", f"{pkg}.copyright")
        if os.path.exists(src) and not os.path.exists(dst):
            shutil.copyfile(src, dst)


def _write_json(path: str, obj: dict) -> None:
    text = json.dumps(obj, indent=1, ensure_ascii=False) + "\n"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return  # unchanged: leave the file (and its mtime) alone
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="launch/studies/photo_corpus.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="corpus directory (created; re-running completes it)")
    ap.add_argument("--max-side", type=int, default=1024, help="downscale so the longer side is at most this")
    ap.add_argument("--no-apt", action="store_true", help="skip pool D (the Debian wallpapers); pool P only")
    args = ap.parse_args(argv)
    try:
        build(args.out, args.max_side, use_apt=not args.no_apt)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
