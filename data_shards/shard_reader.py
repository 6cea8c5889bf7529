"""Raw samples of one shard stream for one reader: shard assignment per epoch, remote reads with retries, a seeded
shuffle buffer and (epoch, position) cursors. `data_shards.stream` builds its batches on top of it; the design notes
(why the split, the cursors, the retries) are in that module's docstring."""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator

import numpy as np
import webdataset as wds

from . import urls

STREAM_CODES = {"syn": 11, "real": 23, "ref": 37}
"""Per-stream seed salts: the reader's shuffle code and the writer's per-sample seed salt."""


def _drain(f: urls.RemoteStream, limit: int = 1 << 20) -> None:
    """Read what follows the tar's end-of-archive blocks (record padding), at most `limit` bytes."""
    try:
        while limit > 0:
            data = f.read(min(limit, urls.CHUNK))
            if not data:
                return
            limit -= len(data)
    except urls.ShardReadError:
        pass  # kept in f.failed: the shard is retried


# ----------------------------------------------------------------------------------------------------------------------
# Per-stream reader: shard assignment, raw samples, deterministic shuffle, cursors
# ----------------------------------------------------------------------------------------------------------------------

class ShardReader:
    """Raw (undecoded) samples of one stream for reader g of G, epoch after epoch.

    The per-epoch sequence is a pure function of (seed, stream, epoch, g, G) and the shard contents, so a cursor
    (epoch, position) identifies a point in it exactly."""

    def __init__(self, shard_dir: str, info: dict, name: str, seed: int, g: int, num_readers: int, buffer: int,
                 stats: Counter, code: int | None = None, timeout: float | urls.Limits = urls.TIMEOUT,
                 trust: bool = False, verify: bool = True):
        self.dir, self.name, self.seed, self.g, self.G, self.buffer = shard_dir, name, seed, g, num_readers, buffer
        self.limits = timeout if isinstance(timeout, urls.Limits) else urls.Limits(timeout=timeout)
        self.trust = trust  # the user opted in to manifest entries that are URLs, pipe: commands or absolute paths
        # the writer's sha256 per file, checked when a remote shard is read to its end
        remote = verify and urls.kind(shard_dir) != "local"
        self.sha256 = {s["file"]: s.get("sha256") for s in info["shards"]} if remote else {}
        self.shards = [(s["file"], None if s.get("count") is None else int(s["count"])) for s in info["shards"]]
        self.stats = stats
        # Each stream has its own shuffle code, so streams are never shuffled alike (a ref stream read from the syn
        # shards gets the ref code: an order independent of the syn stream's).
        self.code = STREAM_CODES[name] if code is None else code
        self.sample_split = len(self.shards) < num_readers
        total = sum(c for _, c in self.shards) if all(c is not None for _, c in self.shards) else None
        if total is not None and total < num_readers:
            raise ValueError(f"stream {name!r} has {total} samples, fewer than the {num_readers} readers "
                             f"(world_size × num_workers); write more samples or use fewer workers")
        self._counting = True

    def assignment(self, epoch: int) -> list[str]:
        """This reader's shard files for `epoch` (all of them when the stream is sample-split)."""
        perm = np.random.default_rng([self.seed, self.code, epoch, 0]).permutation(len(self.shards))
        mine = perm if self.sample_split else perm[self.g::self.G]
        return [self.shards[i][0] for i in mine]

    def _warn(self, kind: str, msg: str, skipped: bool = True) -> None:
        if self._counting:
            self.stats[kind] += 1
            warnings.warn(f"data_shards: {msg}{' (skipped)' if skipped else ''}", RuntimeWarning, stacklevel=3)

    def _shard_samples(self, fname: str, expected: int | None) -> Iterator[dict]:
        """The samples of one shard. A remote read that fails (reset, timeout, 5xx, too slow, a failing pipe) is
        retried with bounded back-off, one budget per shard (urls.Attempts): over HTTP the transfer resumes at the
        byte it broke (urls), otherwise the shard is read again from its start, skipping the samples already
        yielded. A missing file or a shard still unreadable after the last attempt is skipped and counted
        (missing_shards; slow_shards when the last failure was a transfer below the minimum rate, else
        unreachable_shards); every extra attempt counts as a read_retry."""
        url = urls.join(self.dir, fname, self.trust)
        n = 0  # samples of this shard yielded so far
        last: Exception | None = None
        attempts = urls.Attempts()
        try:
            while attempts.next():
                try:
                    f = urls.open_url(url, self.limits, attempts, self.sha256.get(fname))
                except urls.ShardMissing as e:
                    self._warn("missing_shards", f"{self.name} shard {fname}: {e}")
                    return
                except urls.ShardReadError as e:
                    last = e
                    continue
                failed, skip = [], n

                def handler(exn: Exception, f=f, failed=failed) -> bool:
                    if getattr(f, "failed", None) is not None:
                        return False  # a read failure, not a corrupt tar: stop this pass, retry below
                    if not failed:  # webdataset may report one truncation twice (member read, then next header)
                        failed.append(exn)
                        why = str(exn.args[0]).split(" @ ")[0] if exn.args else ""
                        self._warn("truncated_shards", f"{self.name} shard {fname}: {type(exn).__name__}: {why}")
                    return True

                pending = None  # a sample is passed on once the next one has begun (or the shard ended cleanly):
                # the last one before a read failure may be cut short, and the retry reads it again whole
                with f:
                    files = wds.tariterators.tar_file_expander([{"url": url, "stream": f}], handler=handler)
                    for sample in wds.tariterators.group_by_keys(files, handler=handler):
                        if pending is not None:
                            if skip:
                                skip -= 1
                            else:
                                n += 1
                                yield pending
                        pending = sample
                    if getattr(f, "failed", None) is None and isinstance(f, urls.RemoteStream):
                        _drain(f)  # to its end: the sha256 and a pipe's exit status are known there
                if getattr(f, "failed", None) is None and pending is not None:
                    if skip:
                        skip -= 1
                    else:
                        n += 1
                        yield pending
                if getattr(f, "failed", None) is None:
                    if expected is not None and n < expected and not failed:
                        # truncated exactly at a member boundary: tarfile stops silently
                        self._warn("short_shards", f"{self.name} shard {fname}: {n} of {expected} samples")
                    if getattr(f, "digest_ok", None) is False:
                        self._warn("sha256_mismatches", f"{self.name} shard {fname}: its bytes do not match the sha256 "
                                   "in the manifest (changed or corrupted since written; its samples were used)",
                                   skipped=False)
                    return
                last = f.failed
            kind = "slow_shards" if isinstance(last, urls.ShardSlow) else "unreachable_shards"
            why = last.args[0] if last is not None and last.args else last  # webdataset appends to args
            self._warn(kind, f"{self.name} shard {fname}: given up after {attempts.used} attempts ({why})")
        finally:
            if self._counting and attempts.retries:
                self.stats["read_retries"] += attempts.retries

    def _epoch_raw(self, epoch: int) -> Iterator[dict]:
        counts = dict(self.shards)
        i = 0
        for fname in self.assignment(epoch):
            for s in self._shard_samples(fname, counts[fname]):
                if not self.sample_split or i % self.G == self.g:
                    yield s
                i += 1

    def _epoch(self, epoch: int) -> Iterator[dict]:
        """The epoch's samples through a seeded shuffle buffer."""
        rng = np.random.default_rng([self.seed, self.code, epoch, 1, self.g, self.G])
        buf: list[dict] = []
        for s in self._epoch_raw(epoch):
            if len(buf) < self.buffer:
                buf.append(s)
                continue
            j = int(rng.integers(self.buffer))
            buf[j], s = s, buf[j]
            yield s
        for j in rng.permutation(len(buf)):
            yield buf[j]

    def samples(self, epoch: int = 0, pos: int = 0) -> Iterator[tuple[int, int, dict]]:
        """(epoch, position after this sample, sample) forever, starting at cursor (epoch, pos).

        The first `pos` samples of the cursor's epoch are re-streamed (tar bytes only) but not decoded; problems met
        while fast-forwarding were counted before the checkpoint and are not counted again."""
        while True:
            n = 0
            self._counting = pos == 0
            for s in self._epoch(epoch):
                n += 1
                if n <= pos:
                    continue
                self._counting = True
                yield epoch, n, s
            self._counting = True
            if n == 0 or n < pos:
                raise RuntimeError(f"data_shards: {self.name} reader {self.g}/{self.G} found no readable sample "
                                   f"in epoch {epoch} past position {pos} (shards {self.assignment(epoch)})")
            epoch, pos = epoch + 1, 0
