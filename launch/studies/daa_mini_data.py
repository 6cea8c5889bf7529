"""DAA-mini's data: per task the training shards, the oracle's shards and the fixed validation and test splits, each
built once (a step is skipped when its manifest exists). Used by launch/studies/daa_mini.py.

Splits (the protocol: every choice on the validation split, the test split scored once per final config):
- corpus tasks: source pairs from pool S, unpaired target inputs from pool U (the oracle: their pairs), validation
  crops from pool V, test crops from pool E (photo_corpus.py; the four pools share no photo);
- polyu: the PolyU scenes split three ways by sorted scene name (positions 0, 2 mod 4: unpaired real inputs and the
  oracle's pairs; 1 mod 4: test; 3 mod 4: validation). Its source-domain splits are a corpus denoising task's.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Task:
    task: str  # data_shards task
    title: str
    variants: tuple[str, ...]  # the default plan
    y_metric: bool = False  # also report PSNR-Y (rain, as the paper)
    profile: str = "default"  # data_shards.degrade target profile
    in_default: bool = True  # run when no --tasks/--plan names tasks (False: exploration tasks, named explicitly)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd: list, **kw) -> None:
    log("$ " + " ".join(map(str, cmd)))
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def result_path(out: Path, task: str, arm: str, seed: int, split: str) -> Path:
    """The test split's result is result.json (what `make reproduce` reports); the validation's result_val.json."""
    return out / task / arm / f"s{seed}" / ("result.json" if split == "test" else f"result_{split}.json")


def polyu_split(polyu: Path) -> dict:
    """(noisy, mean) pairs by split, split by scene (file name without the trailing index; 'plant_' is 'plant'
    re-shot). Sorted scene names: positions 0 and 2 mod 4 → train, 1 mod 4 → test, 3 mod 4 → val."""
    reals = sorted(polyu.glob("*_real.JPG")) + sorted(polyu.glob("*_real.jpg")) + sorted(polyu.glob("*_real.png"))
    if not reals:
        raise SystemExit(f"error: --polyu {polyu}: no *_real.JPG images (expected the PolyU real-noise pairs)")
    scenes: dict[str, list[tuple[Path, Path]]] = {}
    for r in reals:
        stem = r.with_name(r.name.replace("_real.", "_mean."))
        mean = next((m for m in (stem.with_suffix(x) for x in (r.suffix, ".JPG", ".jpg", ".png")) if m.is_file()), None)
        if mean is None:
            raise SystemExit(f"error: --polyu: {r.name} has no matching *_mean image")
        scene = r.name.rsplit("_", 2)[0].rstrip("_")
        scenes.setdefault(scene, []).append((r, mean))
    names = sorted(scenes)
    part = {"train": [n for i, n in enumerate(names) if i % 2 == 0],
            "test": [n for i, n in enumerate(names) if i % 4 == 1],
            "val": [n for i, n in enumerate(names) if i % 4 == 3]}
    return {**{k: [p for n in v for p in scenes[n]] for k, v in part.items()}, "scenes": part}


def _write_list(path: Path, files: list[Path]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f.resolve()}\n" for f in files))
    return path


def _valset(out: Path, args: list) -> None:
    if not (out / "manifest.json").is_file():
        sh([sys.executable, "-m", "data_shards.valset", *args, "--out", out])


def prepare_data(name: str, t: Task, data: Path, photos: Path, polyu: Path | None, quick: bool,
                 source_task: str, oracle_shards: bool = True, camera_reference: bool = False,
                 placebo_shards: bool = False) -> dict[str, Path]:
    """Shards (source pairs + unpaired target inputs + clean refs), oracle shards (unless `oracle_shards` is
    False: `make demo` trains no oracle), validation and test splits. `camera_reference` (camera-noise tasks) also
    writes the splits and oracle pairs whose clean image is the camera's noise-free rendering (`*_cam`).
    `placebo_shards` (corpus tasks) writes `placebo`: the same shards, but the real stream's pool-U crops carry the
    source degradation (same crops and seeds), so a DAA run on them sees no target-domain data."""
    py = sys.executable
    root = data / name
    shards, oracle = root / "shards", root / "oracle"
    crops = "8" if quick else "110"  # 18 S photos × 110 ≈ 2000 source patches of 96² (notes §3.3)
    common = ["--tile", "96", "--crops-per-image", crops, "--seed", "0", "-q"]
    few = ["--crops-per-image", "2"] if quick else []
    if name == "polyu":
        if polyu is None:
            raise SystemExit("error: task polyu needs --polyu DIR (the PolyU real-noise pairs)")
        split = polyu_split(polyu)
        from data_shards.corpus import load_manifest

        s_pool = [photos / e["file"] for e in load_manifest(str(photos)) if e.get("split") == "S"]
        lists = root / "lists"
        s_list = _write_list(lists / "s_clean.txt", s_pool)
        files = {f"{k}_{i}": _write_list(lists / f"{k}_{'real' if i == 0 else 'mean'}.txt", [p[i] for p in split[k]])
                 for k in ("train", "test", "val") for i in (0, 1)}
        (lists / "scenes.json").write_text(json.dumps(split["scenes"], indent=1))
        pc = ["--tile", "96", "--crops-per-image", "8" if quick else "64", "--seed", "0", "-q"]
        if not (shards / "manifest.json").is_file():
            sh([py, "-m", "data_shards.write", "--task", "denoise", "--gt", s_list, "--syn-on-the-fly", "--real",
                files["train_0"], "--ref", s_list, "--out", shards, *pc])
        if not (oracle / "manifest.json").is_file():
            sh([py, "-m", "data_shards.write", "--task", "denoise", "--syn", files["train_0"], "--gt",
                files["train_1"], "--pair-by", "index", "--out", oracle, *pc])
        for k in ("test", "val"):
            _valset(root / k, ["--input", files[f"{k}_0"], "--gt", files[f"{k}_1"], "--pair-by", "index",
                               "--crop", "128" if quick else "0"])
        # the source splits of a denoiser: a corpus denoising task's AWGN copies (the same for every target profile)
        src = data / source_task
        crops = ["--candidates", "10" if not quick else "2"]
        for k, pool in (("test", "E"), ("val", "V")):
            _valset(src / k, ["--corpus", photos, "--task", "denoise", "--pool", pool, "--seed", "0", *few, *crops])
        return dict(shards=shards, oracle=oracle, test=root / "test", source_test=src / "test", val=root / "val",
                    source_val=src / "val")
    prof = ["--target-profile", t.profile] if t.profile != "default" else []
    extra = ["--syn-on-the-fly"] if t.task == "denoise" else []
    if not (shards / "manifest.json").is_file():
        sh([py, "-m", "data_shards.write", "--corpus", photos, "--task", t.task, "--out", shards, *extra, *prof,
            *common])
    if oracle_shards and not (oracle / "manifest.json").is_file():
        sh([py, "-m", "data_shards.write", "--corpus", photos, "--task", t.task, "--oracle", "--no-ref", "--out",
            oracle, *prof, *common])
    if placebo_shards and not (root / "placebo" / "manifest.json").is_file():
        sh([py, "-m", "data_shards.write", "--corpus", photos, "--task", t.task, "--real-domain", "source", "--out",
            root / "placebo", *extra, *prof, *common])
    # denoising: random crops (SIDD's test blocks are not chosen for texture, and the flat regions are where noise
    # that an AWGN-trained denoiser leaves is visible); blur and rain keep the textured-crop rule (notes §3.3)
    crops = ["--candidates", "10" if not quick else "2"] if t.task == "denoise" else []
    for k, pool in (("test", "E"), ("val", "V")):
        _valset(root / k, ["--corpus", photos, "--task", t.task, "--pool", pool, "--seed", "0", *prof, *few, *crops])
    if camera_reference:  # the same noisy crops and oracle inputs (same seeds), the camera's rendering as clean
        if t.task != "denoise":
            raise SystemExit(f"error: task {name}: the camera reference is defined for camera noise only")
        cam = ["--target-reference", "camera"]
        if oracle_shards and not (root / "oracle_cam" / "manifest.json").is_file():
            sh([py, "-m", "data_shards.write", "--corpus", photos, "--task", t.task, "--oracle", "--no-ref", "--out",
                root / "oracle_cam", *prof, *cam, *common])
        for k, pool in (("test", "E"), ("val", "V")):
            _valset(root / f"{k}_cam", ["--corpus", photos, "--task", t.task, "--pool", pool, "--seed", "0", *prof,
                                        *cam, *few, *crops])
        # round 5 (docs/results/ledger.md, Amendment 5): the scored pool-E split joins validation; pool F is the test
        _valset(root / "valpool_cam", ["--merge", root / "val_cam", root / "test_cam"])
        from data_shards.corpus import load_manifest

        # round 6 (Amendment 6): pool G, the second fresh test pool; round 7 (Amendment 7): pool H, the third, and
        # the four test pools merged (E, F, G, H), on which round 7's claim must hold too
        splits = {e.get("split") for e in load_manifest(str(photos))}
        for folder, pool in (("fresh_cam", "F"), ("fresh2_cam", "G"), ("fresh3_cam", "H")):
            if pool in splits:
                _valset(root / folder, ["--corpus", photos, "--task", t.task, "--pool", pool, "--seed", "0", *prof,
                                        *cam, *few, *crops])
        if {"F", "G", "H"} <= splits:
            _valset(root / "testpool_cam", ["--merge", root / "test_cam", root / "fresh_cam", root / "fresh2_cam",
                                            root / "fresh3_cam"])
    return paths_only(name, data, source_task)


def paths_only(name: str, data_root: Path, source_task: str) -> dict[str, Path]:
    """The data folders of a task; `*_cam`: the camera-reference variants (their source pairs are the plain
    splits': the same photos and seeds). `valpool_cam` (val_cam + test_cam), `fresh_cam` (pool F), `fresh2_cam`
    (pool G), `fresh3_cam` (pool H) and `testpool_cam` (test_cam + the three fresh pools) hold their own source copies
    (for the merged ones, byte-identical to their parts')."""
    root = data_root / name
    src = data_root / source_task if name == "polyu" else root
    return dict(shards=root / "shards", oracle=root / "oracle", placebo=root / "placebo", test=root / "test",
                source_test=src / "test",
                val=root / "val", source_val=src / "val", oracle_cam=root / "oracle_cam", test_cam=root / "test_cam",
                source_test_cam=src / "test", val_cam=root / "val_cam", source_val_cam=src / "val",
                valpool_cam=root / "valpool_cam", source_valpool_cam=root / "valpool_cam",
                fresh_cam=root / "fresh_cam", source_fresh_cam=root / "fresh_cam",
                fresh2_cam=root / "fresh2_cam", source_fresh2_cam=root / "fresh2_cam",
                fresh3_cam=root / "fresh3_cam", source_fresh3_cam=root / "fresh3_cam",
                testpool_cam=root / "testpool_cam", source_testpool_cam=root / "testpool_cam")


def _manifest_facts(path: Path) -> object:
    """What identifies a data set's content in its manifest (shard checksums, or the split's items)."""
    mp = path / "manifest.json"
    if not mp.is_file():
        return None
    m = json.loads(mp.read_text())
    if "streams" in m:  # shards: the tar files are written with mtime 0, so their checksums are the content
        return {k: [s.get("sha256") for s in v["shards"]] for k, v in sorted(m["streams"].items())}
    base = lambda v: Path(v).name if isinstance(v, str) else v  # noqa: E731 - a clone's location is not content
    keys = ("name", "file", "box", "seed", "input_file", "gt_file")
    return [{**{k: base(it.get(k)) for k in keys}, **({"reference": it["reference"]} if "reference" in it else {})}
            for it in m["items"]]  # a split's clean images are part of what it is (photo splits predate the key)


def digest(*paths: Path) -> str:
    """Content identity of data sets: a cached result counts only while the data it was made from is unchanged."""
    facts = [_manifest_facts(p) for p in paths]
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]
