"""Write webdataset training shards (syn / real / ref streams + manifest.json) for `data_shards.stream`.

Two sources, one output layout that `data_shards.stream` reads:

- **Your data set's folders or file lists.** `--syn A --gt B` (paired, e.g. GoPro/Rain13K input vs target), or
  `--gt B --syn-on-the-fly` (denoising on clean images: the reader adds AWGN, as the paper does on DFWB),
  `--real C` (unpaired real degraded inputs: SIDD, RealBlur-J, SPA), `--ref D` (unpaired clean references).
  A folder is searched recursively for images; a text file lists one path per line (relative paths are taken from the
  list's folder). Pairs are matched by relative path without extension (`--pair-by stem`, default) or by position in
  the sorted lists (`--pair-by index`, e.g. SIDD's *_NOISY_* / *_GT_* names).
- **The paper's data sets as downloaded** (`--dataset NAME ROOT`, repeatable; data_shards.datasets): e.g.
  `--dataset dfwb Downloads/ --dataset sidd-medium SIDD_Medium_Srgb/` picks each set's files by its published
  layout and tiles each stream by its official preparation. `--dry-run` (`--list`) prints per stream the file count,
  three example paths and the tiles they give, and writes nothing.
- **The offline photo corpus** (`--corpus DIR --task T`, via `data_shards.corpus` + `data_shards.degrade`): pool S
  photos → syn+gt with the source degradation, pool U → real with the target degradation (`--real-domain source`:
  with the source one, a placebo), pool S clean → ref.
  Pool E is the test split and is written by `python -m data_shards.valset`, never here. Every sample records the
  seed that made it.

Large images can be tiled (`--tile 512 --stride 416`, the official DFWB/SIDD/GoPro preparation; a final tile is flush
with each border) or cut into seeded random crops (`--crops-per-image N`, DAA-mini's patches).

Output (`--out DIR`): `syn-%06d.tar` (gt.png + syn.png, or gt.png only when on the fly), `real-%06d.tar` (real.png),
`ref-%06d.tar` (ref.png), each sample with a `.json` member (task, source file, degradation name, parameters, seed,
tile box); lossless PNG at 8 bits, or 16 when the source is 16-bit (`--bit-depth auto|8|16`); `manifest.json` last
(counts, shard list with sample counts and sha256, task, arguments). Tar members carry mtime 0, so the same inputs
and arguments give byte-identical shards.

A degraded stream (`real`, and `syn` when paired) refuses a file whose path below the named folder marks it as a ground
truth (`GT`, `clean`, `target`, `sharp`, `mean`, …; data_shards.selection), unless `--allow-gt-names`;
`--include`/`--exclude` globs select the degraded files of a layout the registry does not know.

User errors (bad path, empty folder, unmatched pair, unreadable image, non-empty output) print one line starting with
`error:` and exit with status 2. `--overwrite` replaces only this tool's shards and manifest in DIR.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import webdataset as wds

from . import selection
from .inputs import UserError, grid_boxes, list_inputs, match_pairs, quantize, random_boxes, read_image, to_depth
from .pngcrop import encode_png
from .stream import FORMAT, MANIFEST, STREAM_CODES
from .write_args import check_args, cli_parser

MEMBERS = {"syn": ["gt.png", "syn.png"], "real": ["real.png"], "ref": ["ref.png"]}
_OWN_FILE = re.compile(r"^(syn|real|ref)-\d{6}\.tar$")
_CODE = STREAM_CODES  # per-stream seed salts, shared with the reader


# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------

def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class StreamWriter:
    """One stream's shards via webdataset.ShardWriter, through a seeded shuffle buffer of encoded samples so the tiles
    of one image do not sit next to each other in a shard."""

    def __init__(self, out: str, name: str, maxcount: int, maxsize: float, buffer: int, seed: int):
        self.out, self.name, self.maxcount, self.maxsize = out, name, maxcount, maxsize
        self.buffer, self.rng = buffer, np.random.default_rng([seed, _CODE[name], 99])
        self.sink: wds.ShardWriter | None = None
        self.shards: list[dict] = []
        self.buf: list[dict] = []
        self.count = 0

    def _post(self, fname: str) -> None:
        self.shards.append({"file": os.path.basename(fname), "count": self.sink.count})

    def _emit(self, sample: dict) -> None:
        if self.sink is None:
            self.sink = wds.ShardWriter(os.path.join(self.out, f"{self.name}-%06d.tar"), maxcount=self.maxcount,
                                        maxsize=self.maxsize, post=self._post, verbose=0, encoder=False, mtime=0)
        self.sink.write(sample)
        self.count += 1

    def add(self, sample: dict) -> None:
        if self.buffer <= 1:
            return self._emit(sample)
        if len(self.buf) < self.buffer:
            self.buf.append(sample)
            return None
        j = int(self.rng.integers(self.buffer))
        self.buf[j], sample = sample, self.buf[j]
        self._emit(sample)

    def close(self) -> dict:
        for j in self.rng.permutation(len(self.buf)):
            self._emit(self.buf[j])
        self.buf = []
        if self.sink is not None:
            self.sink.close()
        for s in self.shards:
            path = os.path.join(self.out, s["file"])
            s["bytes"], s["sha256"] = os.path.getsize(path), _sha256(path)
        return {"count": self.count, "shards": self.shards}


def make_sample(key: str, images: dict[str, np.ndarray], meta: dict, level: int) -> dict:
    sample = {"__key__": key, "json": json.dumps(meta, default=_json_default, sort_keys=True).encode()}
    for member, a in images.items():
        sample[member] = encode_png(a, level)
    return sample


# ----------------------------------------------------------------------------------------------------------------------
# Sample producers
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class Job:
    stream: str
    index: int
    sources: dict  # member → path (user layout) or a corpus entry
    tiling: dict | None = None  # a data set's own tiling (tile, stride, tile_min); None: the command line's


def tiling_of(args, job_tiling: dict | None) -> dict:
    if job_tiling is not None:
        return {"crops_per_image": 0, **job_tiling}
    return {k: getattr(args, k) for k in ("tile", "stride", "tile_min", "crops_per_image")}


def _boxes(args, h: int, w: int, rng: np.random.Generator, job_tiling: dict | None = None):
    t = tiling_of(args, job_tiling)
    if t["crops_per_image"]:
        return random_boxes(h, w, t["tile"], t["crops_per_image"], rng)
    return grid_boxes(h, w, t["tile"], t["stride"] or t["tile"], t["tile_min"])


def user_samples(args, job: Job) -> Iterator[tuple[dict, dict]]:
    """(images by member, json meta) for one user image (or pair), tiled."""
    imgs = {m: read_image(p) for m, p in job.sources.items()}
    shapes = {m: a.shape for m, a in imgs.items()}
    if len(set(shapes.values())) > 1:
        raise UserError("paired images differ in size: " + ", ".join(f"{job.sources[m]} {s[0]}x{s[1]}"
                                                                       for m, s in shapes.items()))
    depth = args.bit_depth if args.bit_depth != "auto" else (
        16 if any(a.dtype == np.uint16 for a in imgs.values()) else 8)
    depth = int(depth)
    h, w = next(iter(imgs.values())).shape[:2]
    rng = np.random.default_rng([args.seed, _CODE[job.stream], job.index, 0xC0])
    degr = {"syn": "on-the-fly AWGN (added by the reader)" if args.syn_on_the_fly else "user-provided",
            "real": "user-provided (real)", "ref": None}[job.stream]
    for j, (y, x, th, tw) in enumerate(_boxes(args, h, w, rng, job.tiling)):
        crop = {m: to_depth(a[y:y + th, x:x + tw], depth) for m, a in imgs.items()}
        meta = {"task": args.task, "stream": job.stream, "source": dict(job.sources), "box": [y, x, th, tw],
                "tile_index": j, "bit_depth": depth, "degradation": degr, "params": {}}
        yield crop, meta


def corpus_split(entry: dict) -> str | None:
    """The S/U/E/V/F/G/H split of a corpus record. The corpus builder stores it as "split" (its "pool" is the
    photo's origin, P, D, O, G or H); a record with only "pool" in S/U/E/V is read the same way."""
    if entry.get("split") in ("F", "G", "H"):
        return entry["split"]
    for key in ("split", "pool"):
        if entry.get(key) in ("S", "U", "E", "V"):
            return entry[key]
    return None


def _corpus_api():
    try:
        from . import corpus, degrade
    except ImportError as e:
        raise UserError(f"--corpus needs data_shards.corpus and data_shards.degrade: {e}") from None
    return corpus, degrade


def corpus_samples(args, job: Job) -> Iterator[tuple[dict, dict]]:
    """(images by member, json meta) for one corpus photo: clean tiles, degraded with per-tile seeds."""
    corpus, degrade = _corpus_api()
    entry = job.sources["entry"]
    path = os.path.join(args.corpus, entry["file"])
    try:
        img = np.asarray(corpus.load_photo(path), dtype=np.float32)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read corpus photo {path}: {type(e).__name__}: {e}") from None
    depth = 8 if args.bit_depth == "auto" else int(args.bit_depth)
    h, w = img.shape[:2]
    oracle = job.sources.get("oracle", False)
    code = _CODE["real" if oracle else job.stream]  # --oracle: the very crops and seeds of the real stream
    geo = np.random.default_rng([args.seed, code, job.index, 0xC0])
    for j, (y, x, th, tw) in enumerate(_boxes(args, h, w, geo)):
        clean = quantize(img[y:y + th, x:x + tw], depth)  # degrade exactly what is stored as gt
        seed = [args.seed, code, job.index, j + 1]
        meta = {"task": args.task, "stream": job.stream, "source": entry["file"], "name": entry.get("name"),
                "split": corpus_split(entry), "box": [y, x, th, tw], "tile_index": j, "bit_depth": depth, "seed": seed}
        if job.stream == "ref" or (job.stream == "syn" and args.syn_on_the_fly):
            meta.update(degradation="on-the-fly AWGN (added by the reader)" if job.stream == "syn" else None,
                        params={})
            yield ({"gt.png" if job.stream == "syn" else "ref.png": clean}), meta
            continue
        domain = "source" if (job.stream == "syn" and not oracle) or (
            job.stream == "real" and getattr(args, "real_domain", "target") == "source") else "target"
        peak = 255.0 if depth == 8 else 65535.0
        img01, rng = clean.astype(np.float32) / np.float32(peak), np.random.default_rng(seed)
        reference = getattr(args, "target_reference", "photo") if oracle else "photo"
        if reference == "photo":
            out, params = degrade.degrade(img01, args.task, domain, rng, **_profile_kw(args, domain))
        else:  # the oracle's pair: the camera's noise-free rendering is the clean image (same noisy draws)
            out, ref, params = degrade.degrade_pair(img01, args.task, domain, rng, reference=reference,
                                                    **_profile_kw(args, domain))
            clean = quantize(ref, depth)
        meta.update(degradation=params.get("name"), domain=domain, params=params,
                    clipped=bool(np.any(out < 0) or np.any(out > 1)))
        if reference != "photo":
            meta["reference"] = reference
        deg = quantize(out, depth)
        yield ({"gt.png": clean, "syn.png": deg} if job.stream == "syn" else {"real.png": deg}), meta


def _profile_kw(args, domain: str) -> dict:
    """degrade()'s profile argument: only for the target domain and a non-default profile."""
    prof = getattr(args, "target_profile", "default")
    return {"profile": prof} if domain == "target" and prof != "default" else {}


def plan_user(args) -> dict[str, list[Job]]:
    jobs: dict[str, list[Job]] = {}
    if not any((args.syn, args.gt, args.real, args.ref)):
        return jobs
    if args.syn and not args.gt:
        raise UserError("--syn needs --gt (the clean targets it is paired with)")
    if args.gt:
        gt = list_inputs(args.gt, "--gt")
        if args.syn_on_the_fly:
            if args.syn:
                raise UserError("--syn-on-the-fly writes only --gt (the reader adds AWGN); drop --syn")
            pairs = [{"gt.png": p} for _, p in gt]
        else:
            if not args.syn:
                raise UserError("--gt needs --syn (degraded inputs), or --syn-on-the-fly for AWGN denoising")
            syn = selection.degraded_inputs(args, args.syn, "--syn")
            pairs = [{"syn.png": s, "gt.png": g} for s, g in match_pairs(syn, gt, args.pair_by)]
        jobs["syn"] = [Job("syn", i, p) for i, p in enumerate(pairs)]
    if args.real:
        real = selection.degraded_inputs(args, args.real, "--real")
        jobs["real"] = [Job("real", i, {"real.png": p}) for i, (_, p) in enumerate(real)]
    if args.ref:
        jobs["ref"] = [Job("ref", i, {"ref.png": p}) for i, (_, p) in enumerate(list_inputs(args.ref, "--ref"))]
    return jobs


def plan_datasets(args) -> dict[str, list[Job]]:
    """--syn/--gt/--real/--ref, then each --dataset NAME ROOT (data_shards.datasets); one source per stream."""
    from .datasets import add_jobs

    jobs = add_jobs(args, plan_user(args), Job)
    if not jobs:
        raise UserError("nothing to write: give --gt (with --syn or --syn-on-the-fly), --real and/or --ref, "
                        "--dataset, or --corpus")
    return jobs


def plan_corpus(args) -> dict[str, list[Job]]:
    if any((args.syn, args.gt, args.real, args.ref)):
        raise UserError("--corpus cannot be combined with --syn/--gt/--real/--ref")
    if not os.path.isdir(args.corpus):
        raise UserError(f"--corpus: no such folder: {args.corpus}")
    corpus, _ = _corpus_api()
    try:
        entries = corpus.load_manifest(args.corpus)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"--corpus: cannot load the photo manifest of {args.corpus}: {type(e).__name__}: {e}") from None
    pools = {p: sorted((e for e in entries if corpus_split(e) == p), key=lambda e: e["name"]) for p in "SU"}
    if not pools["S"]:
        raise UserError(f"--corpus: {args.corpus} has no pool-S photos")
    if args.oracle:  # the oracle's training pairs: pool U target-degraded (= the real stream) with its clean photos
        if not pools["U"]:
            raise UserError(f"--corpus --oracle: {args.corpus} has no pool-U photos")
        return {"syn": [Job("syn", i, {"entry": e, "oracle": True}) for i, e in enumerate(pools["U"])]}
    jobs = {"syn": [Job("syn", i, {"entry": e}) for i, e in enumerate(pools["S"])]}
    if pools["U"]:
        jobs["real"] = [Job("real", i, {"entry": e}) for i, e in enumerate(pools["U"])]
    if not args.no_ref:
        jobs["ref"] = [Job("ref", i, {"entry": e}) for i, e in enumerate(pools["S"])]
    return jobs


# ----------------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    return cli_parser(__doc__)


def prepare_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} exists and is not a folder")
    if os.path.isdir(out):
        entries = os.listdir(out)
        if entries and not overwrite:
            raise UserError(f"--out {out} is not empty ({len(entries)} entries); pass --overwrite to replace its "
                            "shards and manifest")
        for e in entries:
            if e == MANIFEST or _OWN_FILE.match(e):
                os.remove(os.path.join(out, e))
    else:
        try:
            os.makedirs(out)
        except OSError as e:
            raise UserError(f"--out {out}: cannot create: {e.strerror}") from None


def write(args) -> dict:
    """Validate, plan, write every stream, then the manifest. Returns the manifest."""
    check_args(args)
    jobs = plan_corpus(args) if args.corpus else plan_datasets(args)
    if args.dry_run:
        return dry_run(args, jobs)
    created = not os.path.exists(args.out)
    prepare_out(args.out, args.overwrite)
    produce = corpus_samples if args.corpus else user_samples
    streams, written = {}, []
    try:
        for name, js in jobs.items():
            order = np.random.default_rng([args.seed, _CODE[name], 7]).permutation(len(js)) \
                if args.shuffle_buffer else range(len(js))
            w = StreamWriter(args.out, name, args.maxcount, args.maxsize, args.shuffle_buffer, args.seed)
            n = 0
            for i in order:
                for images, meta in produce(args, js[i]):
                    w.add(make_sample(f"{name}{n:08d}", images, meta, args.compress_level))
                    n += 1
            info = w.close()
            written += [s["file"] for s in info["shards"]]
            members = ["gt.png"] if name == "syn" and args.syn_on_the_fly else MEMBERS[name]
            streams[name] = {"members": members + ["json"], **info}
            if not args.quiet:
                print(f"{name}: {info['count']} samples from {len(js)} images in {len(info['shards'])} shard(s)",
                      file=sys.stderr)
    except BaseException:
        for f in written + [f for f in os.listdir(args.out) if _OWN_FILE.match(f)]:
            if os.path.exists(os.path.join(args.out, f)):
                os.remove(os.path.join(args.out, f))  # only our own shards: no half-written data set is left
        if created and not os.listdir(args.out):
            os.rmdir(args.out)  # a failed run leaves no empty --out behind (a rerun would not need --overwrite)
        raise
    man = {"format": FORMAT, "task": args.task, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "tool": "python -m data_shards.write", "args": {k: v for k, v in vars(args).items()},
           "syn_on_the_fly": bool(args.syn_on_the_fly), "counts": {k: v["count"] for k, v in streams.items()},
           "streams": streams}
    tmp = os.path.join(args.out, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(man, f, indent=1, default=_json_default)
    os.replace(tmp, os.path.join(args.out, MANIFEST))
    if not args.quiet:
        print(f"wrote {os.path.join(args.out, MANIFEST)}", file=sys.stderr)
    return man


def dry_run(args, jobs: dict[str, list[Job]]) -> dict:
    """What `write` would do, without creating --out: printed to stdout, and returned as {"dry_run", "lines"}."""
    if args.corpus:
        raise UserError("--dry-run lists user folders and --dataset inputs; a --corpus names its photos in its "
                        "manifest.json")

    def encode(sources: dict, tiling: dict) -> int:
        job = Job("syn" if "gt.png" in sources else next(iter(sources))[:-4], 0, sources, tiling)
        for images, meta in user_samples(args, job):
            return len(make_sample("k", images, meta, args.compress_level)["json"]) + sum(
                len(encode_png(a, args.compress_level)) for a in images.values())
        return 0

    tilings = {name: tiling_of(args, js[0].tiling) for name, js in jobs.items()}
    lines = selection.report(jobs, tilings, args.maxcount, args.maxsize, encode, getattr(args, "dataset_notes", {}))
    print("\n".join([f"dry run, task {args.task}: nothing written"] + lines))
    return {"dry_run": True, "lines": lines}


def main(argv: list[str] | None = None) -> int:
    try:
        write(build_parser().parse_args(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
