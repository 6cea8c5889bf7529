"""Streaming reader / mixer for the shards of `data_shards.write`: the training batches of the DAA objective.

    stream = TrainStream(StreamConfig("shards/", batch_size=16, num_workers=2), rank, world_size)
    for batch in stream:            # infinite; dicts of float32 CPU tensors (B,3,P,P): x_s, y_s, x_r[, y_ref]
        ...
    ckpt["data"] = stream.state_dict()          # per rank; small (seed, layout, per-worker cursors)
    stream.load_state_dict(ckpt["data"])        # before iter(): the next batches equal an uninterrupted run

Design (why each piece is there):

- **Three independent streams.** `syn` (gt.png + syn.png, or gt only with on-the-fly AWGN), `real` and `ref` are read
  and shuffled with their own seeds, so a real image is never tied to a synthetic index (fixes spec §10 quirk 13).
- **Shard split per epoch.** For each stream and epoch the shard list is permuted by (seed, stream, epoch), the same on
  every rank, and reader g = rank·W + worker takes shards g, g+G, … (G = world·W readers): disjoint and covering.
  When a stream has fewer shards than readers (a small data set), it is *sample-split* instead: every reader streams
  all shards and keeps the raw samples with index % G == g. Same coverage, G× the I/O for that stream; never an empty
  reader (a stream with fewer samples than readers is a one-line error at construction).
- **Infinite, equal per-rank batch counts.** Each reader cycles epochs forever (reshuffled by (seed, epoch)), so every
  rank yields batches for as long as the trainer asks: no rank runs dry, no DDP hang (webdataset #188/#225).
  Training counts images, not epochs.
- **Whole batches per worker, round-robin.** Each DataLoader worker builds whole batches; the DataLoader hands them
  out in worker order (0,1,…,W−1,0,…), so rank batch n is logical worker n % W's local batch n // W.
- **Randomness is position-keyed.** Crops, dihedral transforms and AWGN of local batch k come from a generator seeded
  with (seed, stream, rank, world, W, worker, k); the sample order is a function of (seed, epoch, reader). Nothing
  depends on timing, so results are deterministic for (seed, rank, world_size, num_workers); num_workers 0 and 1 agree.
- **Exact resume.** Every batch carries (epoch, position) cursors of its worker's streams; `state_dict()` keeps the
  cursors of the last batch *yielded to the trainer* per worker. On resume each worker restarts at its local batch
  index and re-streams its current epoch up to the cursor *without decoding* (tar bytes only; earlier epochs are
  skipped without any I/O), and the DataLoader's worker roles are rotated so the first batch comes from worker n % W.
  Cursors count raw samples, so skipped corrupt samples cannot shift a resumed run. On another world size (or
  num_workers), `load_resharded` takes every old rank's state and the new readers first share out the rest of the
  epoch in progress (data_shards.reshard): nothing repeated or lost.
- **Robust.** A corrupt/undecodable member, a sample missing a member, syn/gt size mismatch, a missing or truncated
  tar are warned about, skipped and counted in `stream.stats` (a Counter); never a crash. A reader that finds no
  readable sample in a whole epoch, or that skips as many corrupt samples in a row as the stream holds (nothing in
  it decodes), raises `DataError` instead of spinning forever.
- **Crops.** syn and gt share one random P×P crop and one of the 8 dihedral transforms; real and ref get independent
  ones. Offsets are uniform over *all* valid positions (fixes quirk 14). Images with a side < P are bilinearly
  upscaled (aspect kept) until the short side is P, then cropped — the official code resizes to P×P, which distorts
  non-square images. AWGN for on-the-fly shards is added after crop and transform, σ ~ U(awgn_sigma)/255 per sample,
  one σ for all channels, unclipped (official behaviour, quirk 15; `clip_awgn=True` clips).
- **Decoding.** The writer's PNGs are crop-indexed (data_shards.pngcrop): a 128² crop of a 512² tile inflates only
  its ~136 rows. Anything else (foreign PNGs, JPEG, TIFF, 16-bit, gray, alpha) is decoded whole by
  data_shards.imageio (OpenCV), then cropped. Crop decoding, not tar streaming, is where most of the speed-up over
  per-file loading comes from (`python launch/bench/loader.py`).
"""
from __future__ import annotations

import itertools
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import reshard as rs
from . import urls
from .imageio import decode_image
from .imageio import to_float01 as to_float
from .pngcrop import decode_crop, image_size
from .shard_reader import STREAM_CODES, ShardReader

MANIFEST = "manifest.json"
FORMAT = "daa-shards/1"


# ----------------------------------------------------------------------------------------------------------------------
# Config and manifest
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class StreamConfig:
    shards: str
    """Shard directory written by `python -m data_shards.write` (holds manifest.json)."""
    patch_size: int = 128
    """P: training crops are P×P (the paper: 128)."""
    batch_size: int = 16
    """Per rank (the global batch is batch_size × world_size)."""
    seed: int = 0
    num_workers: int = 2
    """DataLoader worker processes per rank; 0 = read in the training process (same batches as 1)."""
    task: str | None = None
    """When set, must equal the manifest's task (guards against pointing a deblur run at denoise shards)."""
    awgn_sigma: tuple[float, float] = (0.0, 75.0)
    """On-the-fly source AWGN when the syn shards hold only gt: σ ~ U[lo, hi]/255 per sample (official [0, 75])."""
    clip_awgn: bool = False
    """Clip on-the-fly AWGN inputs to [0,1] (official: unclipped)."""
    with_real: bool = True
    """Yield x_r (DAA modes); False for the source-only baseline."""
    with_ref: bool = False
    """Yield y_ref (the 'Ours-Ex' mode): the ref stream, or when absent the syn shards' gt read as an independent
    stream (the official default ref_root is the synthetic GT set)."""
    augment: bool = True
    """Random dihedral transforms (the official 8)."""
    shuffle_buffer: int = 100
    """Per-stream sample shuffle buffer per worker (raw encoded bytes are buffered, ~0.5 MB per 512² tile)."""
    return_keys: bool = False
    """Add batch['keys'] = {stream: [sample keys]} (a non-tensor entry; for tests and debugging)."""
    prefetch_factor: int = 2
    pin_memory: bool = False
    read_timeout: float = urls.TIMEOUT
    """Seconds a remote shard read (http(s), pipe:) may wait for data before it counts as failed (and is retried)."""
    min_rate: float = urls.MIN_RATE
    """Bytes/s a remote shard transfer must sustain over `rate_window` seconds of reading, else it is retried (an
    HTTP transfer resumes where it was), then skipped and counted as `slow_shards`. 0 = no rate check."""
    rate_window: float = urls.RATE_WINDOW
    """Seconds of reading over which `min_rate` is judged."""
    verify_sha256: bool = True
    """Check a remote shard read to its end against the sha256 in the manifest (a mismatch is counted as
    `sha256_mismatches` and warned; ≈ 1 ms of CPU per MB read)."""
    trust_manifest_locations: bool = False
    """Allow manifest entries that are URLs, pipe: commands, absolute paths or paths out of the manifest's folder
    (a hand-written manifest placing a stream elsewhere). Off: such an entry is a one-line error, since a manifest
    is data and whoever can write it would choose the commands and hosts every reader runs."""

    def __post_init__(self):
        if self.patch_size < 1 or self.batch_size < 1 or self.num_workers < 0 or self.shuffle_buffer < 1:
            raise ValueError("need patch_size >= 1, batch_size >= 1, num_workers >= 0 and shuffle_buffer >= 1")
        lo, hi = self.awgn_sigma
        if not 0 <= lo <= hi:
            raise ValueError(f"awgn_sigma must be (lo, hi) with 0 <= lo <= hi, got {self.awgn_sigma}")
        if self.read_timeout <= 0 or self.min_rate < 0 or self.rate_window <= 0:
            raise ValueError("need read_timeout > 0, min_rate >= 0 and rate_window > 0")

    def limits(self) -> urls.Limits:
        return urls.Limits(self.read_timeout, self.min_rate, self.rate_window)


def load_manifest(shard_dir: str, timeout: float | urls.Limits = urls.TIMEOUT, trust: bool = False) -> dict:
    """The manifest at a shard location (a folder, an http(s) URL or a pipe: command; data_shards.urls). A stream
    given as a brace pattern (`"pattern": "syn-{000000..000127}.tar"`) gets the file list it names (counts unknown).
    Every file it names must be relative to the location (urls.check_name) unless `trust`: else DataError."""
    path = urls.join(shard_dir, MANIFEST)
    if urls.kind(shard_dir) == "local" and not os.path.isfile(path):
        raise FileNotFoundError(f"no {MANIFEST} in {shard_dir!r}: write shards with `python -m data_shards.write`")
    try:
        man = json.loads(urls.read_all(path, timeout))
    except urls.ShardMissing:
        raise FileNotFoundError(f"no {MANIFEST} at {shard_dir!r}") from None
    except urls.ShardReadError as e:
        raise FileNotFoundError(f"cannot read the manifest: {e}") from None
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON manifest ({e})") from None
    if man.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown shard format {man.get('format')!r} (expected {FORMAT})")
    for name, info in man.get("streams", {}).items():
        if "shards" not in info and "pattern" in info:
            info["shards"] = [{"file": f, "count": None} for f in urls.expand(info["pattern"])]
        if not info.get("shards"):
            raise ValueError(f"{path}: stream {name!r} names no shards")
        for sh in info["shards"]:
            why = None if trust else urls.check_name(str(sh.get("file", "")))
            if why:
                raise DataError(f"{path}: stream {name!r} names shard {str(sh.get('file'))[:80]!r}, which is {why}; "
                                "a manifest names its shards relative to its own location (to allow this, set "
                                "trust_manifest_locations)")
    return man


# ----------------------------------------------------------------------------------------------------------------------
# Sample processing: decode, crop, dihedral transform
# ----------------------------------------------------------------------------------------------------------------------

class DataError(RuntimeError):
    """The shards cannot yield a batch (every sample corrupt, nothing readable): one line naming the stream."""


class _BadSample(Exception):
    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind = kind


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms of an HxWxC array: rot90 by k % 4, then a vertical flip when k >= 4."""
    a = np.rot90(a, k % 4, axes=(0, 1))
    return a[::-1] if k >= 4 else a


def _crops(datas: list[bytes], p: int, rng: np.random.Generator, augment: bool) -> list[np.ndarray]:
    """The same random P×P crop and dihedral transform of each encoded image in `datas` (all the same size).
    Returns float32 HxWx3 crops in [0,1]."""
    try:
        sizes = [image_size(d) for d in datas]
    except Exception as e:  # noqa: BLE001 - any header failure means a corrupt member
        raise _BadSample("corrupt_samples", f"undecodable image ({type(e).__name__})") from e
    if len(set(sizes)) != 1:
        raise _BadSample("size_mismatch", f"paired images differ in size: {sizes}")
    h, w = sizes[0]
    k = int(rng.integers(8)) if augment else 0
    try:
        if h >= p and w >= p:
            y0, x0 = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            out = [to_float(decode_crop(d, y0, x0, p)) for d in datas]
        else:  # upscale (aspect kept) so the short side is P, then crop
            s = p / min(h, w)
            nh, nw = max(p, round(h * s)), max(p, round(w * s))
            y0, x0 = int(rng.integers(nh - p + 1)), int(rng.integers(nw - p + 1))
            out = []
            for d in datas:
                t = torch.from_numpy(to_float(decode_image(d))).permute(2, 0, 1)[None]
                t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False)
                out.append(t[0, :, y0:y0 + p, x0:x0 + p].permute(1, 2, 0).numpy())
    except _BadSample:
        raise
    except Exception as e:  # noqa: BLE001
        raise _BadSample("corrupt_samples", f"{type(e).__name__}: {e}") from e
    if any(o.shape != (p, p, 3) for o in out):
        raise _BadSample("corrupt_samples", "decoded fewer rows than the header announces")
    return [_dihedral(o, k) for o in out]


def _chw_batch(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------------------------------------------------
# Worker: whole batches; and the rank-level iterable
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    """What one logical worker does: its identity and where it resumes."""
    worker: int
    batch: int = 0
    cursors: dict = field(default_factory=dict)


class _WorkerStream(torch.utils.data.IterableDataset):
    """Batches of one rank's logical workers. Inside a DataLoader, DataLoader worker i plays logical worker
    (i + rotate) % W so that a resumed loader continues the round-robin where the checkpoint left it."""

    def __init__(self, cfg: StreamConfig, man: dict, rank: int, world_size: int, plans: list[_Plan], rotate: int,
                 reshard: dict | None = None):
        super().__init__()
        self.cfg, self.man, self.rank, self.world = cfg, man, rank, world_size
        self.plans, self.rotate, self.reshard = plans, rotate, reshard or {}
        self.W = max(1, cfg.num_workers)

    def _streams(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """stream name → (shard stream to read, members needed)."""
        have = self.man["streams"]
        on_the_fly = self.man.get("syn_on_the_fly", False)
        out = {"syn": ("syn", ("gt.png",) if on_the_fly else ("gt.png", "syn.png"))}
        if self.cfg.with_real:
            out["real"] = ("real", ("real.png",))
        if self.cfg.with_ref:
            out["ref"] = ("ref", ("ref.png",)) if "ref" in have else ("ref", ("gt.png",))
        return out

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = 0 if info is None else info.id
        plan = self.plans[(wid + self.rotate) % self.W]
        yield from self._batches(plan)

    def _batches(self, plan: _Plan) -> Iterator[dict]:
        cfg, W, p, B = self.cfg, self.W, self.cfg.patch_size, self.cfg.batch_size
        g, G = self.rank * W + plan.worker, self.world * W
        stats: Counter = Counter()
        have = self.man["streams"]
        readers, iters, cursors = {}, {}, {}
        limit = {}
        for name, (src, _) in self._streams().items():
            shard_stream = src if src in have else "syn"  # ref falls back to the syn shards' gt
            # this many corrupt samples in a row = at least one whole epoch of this reader with nothing decodable
            # (shards listed by a pattern have no counts: then a generous bound)
            limit[name] = max(1, sum(int(s["count"]) if s.get("count") is not None else 10_000
                                     for s in have[shard_stream]["shards"]))
            readers[name] = _reader(cfg, have, name, g, G, stats)
            cursors[name] = tuple(plan.cursors.get(name, (0, 0)))
            rp = self.reshard.get(name)
            if rp is not None and cursors[name][0] == rs.REMAINDER:  # the rest of an epoch begun on other ranks
                iters[name] = itertools.chain(
                    rs.remainder(lambda r, n, name=name: _reader(cfg, have, name, r, n, stats), rp, g, G,
                                 cursors[name][1]),
                    readers[name].samples(rp["end_epoch"] + 1, 0))
            else:
                iters[name] = readers[name].samples(*cursors[name])
        on_the_fly = self.man.get("syn_on_the_fly", False)
        lo, hi = cfg.awgn_sigma
        k = plan.batch
        while True:
            out: dict = {}
            keys: dict = {}
            for name, (_, members) in self._streams().items():
                rng = np.random.default_rng([cfg.seed, STREAM_CODES[name], self.rank, self.world, W, plan.worker, k])
                crops: list[list[np.ndarray]] = []
                keys[name] = []
                bad_run = 0
                while len(crops) < B:
                    epoch, pos, s = next(iters[name])
                    cursors[name] = (epoch, pos)
                    try:
                        missing = [m for m in members if m not in s]
                        if missing:
                            raise _BadSample("incomplete_samples", f"missing member(s) {missing}")
                        crops.append(_crops([s[m] for m in members], p, rng, cfg.augment))
                        keys[name].append(s["__key__"])
                        bad_run = 0
                    except _BadSample as e:
                        stats[e.kind] += 1
                        bad_run += 1
                        if bad_run >= limit[name]:  # 100 % corrupt: stop instead of spinning
                            raise DataError(f"data_shards: {name} stream in {cfg.shards}: {bad_run} samples in a "
                                            f"row could not be used (last: {e}); the shards look corrupt") from None
                        warnings.warn(f"data_shards: {name} sample {s.get('__key__')} in "
                                      f"{os.path.basename(str(s.get('__url__')))}: {e} (skipped)", RuntimeWarning,
                                      stacklevel=2)
                if name == "syn":
                    y = _chw_batch([c[0] for c in crops])
                    if on_the_fly:
                        sig = torch.from_numpy(rng.uniform(lo, hi, size=B).astype(np.float32) / 255.0)
                        noise = torch.from_numpy(rng.standard_normal((B, 3, p, p), dtype=np.float32))
                        x = y + sig.view(B, 1, 1, 1) * noise
                        out["x_s"] = x.clamp_(0, 1) if cfg.clip_awgn else x
                    else:
                        out["x_s"] = _chw_batch([c[1] for c in crops])
                    out["y_s"] = y
                else:
                    out["x_r" if name == "real" else "y_ref"] = _chw_batch([c[0] for c in crops])
            k += 1
            if cfg.return_keys:
                out["keys"] = keys
            out["_meta"] = {"worker": plan.worker, "batch": k, "cursors": dict(cursors), "stats": dict(stats)}
            stats.clear()
            yield out


def _reader(cfg: StreamConfig, have: dict, name: str, g: int, G: int, stats: Counter) -> ShardReader:
    """Reader g of G of stream `name` (a ref stream without ref shards reads the syn shards' gt)."""
    src = name if name in have else "syn"
    return ShardReader(cfg.shards, have[src], src, cfg.seed, g, G, cfg.shuffle_buffer, stats, code=STREAM_CODES[name],
                       timeout=cfg.limits(), trust=cfg.trust_manifest_locations, verify=cfg.verify_sha256)


class TrainStream:
    """Infinite iterable of training batches for one rank (see the module docstring).

    Iterating starts `num_workers` DataLoader workers (or reads in-process when 0) from the current state; the
    state advances with every batch handed to the caller. One active iterator at a time."""

    def __init__(self, cfg: StreamConfig, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.manifest = load_manifest(cfg.shards, cfg.limits(), cfg.trust_manifest_locations)
        if cfg.task is not None and cfg.task != self.manifest.get("task"):
            raise ValueError(f"shards in {cfg.shards!r} are for task {self.manifest.get('task')!r}, "
                             f"not {cfg.task!r}")
        have = self.manifest["streams"]
        if "syn" not in have:
            raise ValueError(f"shards in {cfg.shards!r} have no 'syn' stream (write with --syn/--gt or --corpus)")
        if cfg.with_real and "real" not in have:
            raise ValueError(f"shards in {cfg.shards!r} have no 'real' stream (write with --real or --corpus); "
                             "set with_real=False for the source-only baseline")
        self.W = max(1, cfg.num_workers)
        G = world_size * self.W
        for name in ("syn", "real", "ref"):  # fail early on too few samples rather than inside a worker
            if name in have and (name != "real" or cfg.with_real) and (name != "ref" or cfg.with_ref):
                ShardReader(cfg.shards, have[name], name, cfg.seed, 0, G, 1, Counter())
        self.batches = 0
        self.stats: Counter = Counter()
        self._plans = [_Plan(w) for w in range(self.W)]
        self.reshard: dict[str, dict] = {}  # per stream: the remainder plan of the last elastic resume (reshard.py)

    # -- introspection -------------------------------------------------------------------------------------------
    @property
    def sample_split(self) -> dict[str, bool]:
        """Per stream: True when it has fewer shards than readers and is split by sample instead of by shard."""
        G = self.world_size * self.W
        return {n: len(s["shards"]) < G for n, s in self.manifest["streams"].items()}

    def assignment(self, stream: str, epoch: int, worker: int = 0) -> list[str]:
        """Shard files reader (this rank, `worker`) reads in `epoch` of `stream`."""
        G = self.world_size * self.W
        r = ShardReader(self.cfg.shards, self.manifest["streams"][stream], stream, self.cfg.seed,
                         self.rank * self.W + worker, G, 1, Counter())
        return r.assignment(epoch)

    # -- state -----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": FORMAT, "version": rs.STATE_VERSION, "reshard": self.reshard,
                "seed": self.cfg.seed, "rank": self.rank, "world_size": self.world_size,
                "num_workers": self.cfg.num_workers, "batch_size": self.cfg.batch_size, "batches": self.batches,
                "workers": [{"batch": pl.batch, "cursors": {k: list(v) for k, v in pl.cursors.items()}}
                            for pl in self._plans],
                "stats": dict(self.stats)}

    def load_state_dict(self, state: dict) -> None:
        """This rank's state, saved at the same world size and num_workers (format 1, without `version`, or 2)."""
        self._check(state, ("rank", "world_size", "num_workers"))
        self.batches = int(state["batches"])
        self._plans = [_Plan(w, int(s["batch"]), {k: tuple(v) for k, v in s["cursors"].items()})
                       for w, s in enumerate(state["workers"])]
        self.stats = Counter(state.get("stats", {}))
        self.reshard = {k: dict(v) for k, v in (state.get("reshard") or {}).items()}

    def load_resharded(self, states: list[dict]) -> None:
        """Continue from the states of *every* rank of a run with another world size (or num_workers): the new
        readers first share out the rest of each stream's epoch in progress (data_shards.reshard), so nothing is
        repeated or lost; `stats` counts resharded_repeats (always 0) and resharded_skips (0 unless a previous
        reshard's remainder was unfinished). Problem counts of the old ranks are carried by rank 0."""
        for st in states:
            self._check(st, ())
        have = self.manifest["streams"]
        self.batches, self._plans, self.reshard = 0, [_Plan(w) for w in range(self.W)], {}
        counted: Counter = Counter()
        cursors = {}
        for name in ("syn", "real", "ref"):
            if name != "syn" and not (self.cfg.with_real if name == "real" else self.cfg.with_ref):
                continue
            cur = rs.old_cursors(states, name)
            if any(e == rs.REMAINDER for e, _ in cur):  # resharded again before the last remainder was read
                src = name if name in have else "syn"
                counts = {s["file"]: s.get("count") for s in have[src]["shards"]}
                start = rs.skip_unfinished(lambda g, n, name=name: _reader(self.cfg, have, name, g, n, Counter()),
                                           counts, states, name, counted)
                cursors[name] = (start, 0)
            else:
                self.reshard[name] = {"from_readers": len(cur), "cursors": [list(c) for c in cur],
                                      "end_epoch": max(e for e, _ in cur)}
                cursors[name] = (rs.REMAINDER, 0)
        for pl in self._plans:
            pl.cursors = dict(cursors)
        self.stats = Counter()
        if self.rank == 0:
            for st in states:
                self.stats.update(st.get("stats", {}))
            self.stats.update({"resharded_repeats": 0, "resharded_skips": 0, **counted})

    def _check(self, state: dict, same: tuple[str, ...]) -> None:
        mine = {"seed": self.cfg.seed, "rank": self.rank, "world_size": self.world_size,
                "num_workers": self.cfg.num_workers, "batch_size": self.cfg.batch_size}
        diff = {k: (state.get(k), mine[k]) for k in ("seed", "batch_size", *same) if state.get(k) != mine[k]}
        if state.get("version", 1) > rs.STATE_VERSION:
            diff["version"] = (state["version"], rs.STATE_VERSION)
        if diff:
            raise ValueError("cannot resume the data stream exactly: saved vs current " +
                             ", ".join(f"{k} {a}≠{b}" for k, (a, b) in diff.items()))

    # -- iteration -------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        ds = _WorkerStream(self.cfg, self.manifest, self.rank, self.world_size,
                           [_Plan(p.worker, p.batch, dict(p.cursors)) for p in self._plans], self.batches % self.W,
                           self.reshard)
        if self.cfg.num_workers == 0:
            it = iter(ds)
        else:
            it = iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=self.cfg.num_workers,
                                                  prefetch_factor=self.cfg.prefetch_factor,
                                                  pin_memory=self.cfg.pin_memory, worker_init_fn=_ignore_sigterm))
        for batch in it:
            meta = batch.pop("_meta")
            pl = self._plans[meta["worker"]]
            pl.batch, pl.cursors = meta["batch"], {k: tuple(v) for k, v in meta["cursors"].items()}
            self.stats.update(meta["stats"])
            self.batches += 1
            yield batch


def _ignore_sigterm(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM; the training process decides. Slurm (preemption, time limit, `scancel`,
    srun forwarding) and torchrun's agent signal every process of a rank, the workers included, and torch's worker
    handler dies on a SIGTERM not sent by its parent: the rank then failed with "DataLoader worker exited
    unexpectedly" instead of saving its checkpoint at the next step boundary. A worker still ends with
    its DataLoader, or when the training process is gone (torch's parent watchdog), or on SIGKILL."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(cfg: StreamConfig, rank: int = 0, world_size: int = 1) -> TrainStream:
    """The training data for one rank: a `TrainStream` (already iterable with its own DataLoader workers)."""
    return TrainStream(cfg, rank, world_size)


__all__ = ["DataError", "STREAM_CODES", "StreamConfig", "TrainStream", "make_loader", "load_manifest"]
