"""Continuing a stream's epoch in progress on another number of readers (elastic resume).

A stream is read by G = world_size × num_workers readers; reader g's samples of an epoch are a pure function of
(seed, stream, epoch, g, G) (shard_reader.ShardReader), and its cursor (epoch, pos) says how many it has consumed.
When a run resumes with G' ≠ G readers, the samples not consumed yet are exactly, for every old reader r, the rest
of its sequence from its cursor to the end of the newest epoch any old reader is in (`end_epoch`): the *remainder*.
The G' new readers share it out before they start epoch end_epoch + 1 under their own layout:

- G' ≥ G: old reader r's remainder goes to the new readers h with h % G == r, which take every k-th sample of it
  (k = their number) by position;
- G' < G: new reader r % G' takes old reader r's remainder whole (after the other units it was given).

So no sample is repeated or lost. A new reader's cursor in the remainder is (REMAINDER, samples taken); the plan
(old reader count, old cursors, end_epoch) is part of the stream's state until the next reshard, so a checkpoint
taken in the middle of the remainder resumes exactly at the same world size. A second reshard before a remainder
is finished (another world-size change within the same epoch) cannot continue it: the new layout then starts at
the epoch after every epoch any reader has begun, and the samples left unread are counted in `resharded_skips`
(from the manifest's shard counts; `resharded_unknown` when a shard has no count).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

REMAINDER = -1
"""Cursor epoch of a reader that is still reading the remainder of a resharded epoch."""
STATE_VERSION = 2
"""TrainStream.state_dict format: 2 adds `version` and `reshard`; states without `version` are format 1."""


def old_cursors(states: list[dict], name: str) -> list[tuple[int, int]]:
    """Cursor of every old reader (old rank-major, then worker) for stream `name`."""
    return [tuple(w["cursors"].get(name, (0, 0))) for st in states for w in st["workers"]]


def helpers(r: int, g_old: int, g_new: int) -> list[int]:
    """The new readers that share old reader r's remainder."""
    return [h for h in range(g_new) if h % g_old == r] if g_new >= g_old else [r % g_new]


def remainder(reader: Callable[[int, int], object], plan: dict, g: int, g_new: int, skip: int
              ) -> Iterator[tuple[int, int, dict]]:
    """New reader g's share of the remainder, as (REMAINDER, samples taken so far, sample); the first `skip` are
    passed over (re-streamed, not decoded). `reader(r, G)` builds old reader r's ShardReader."""
    g_old, end = plan["from_readers"], plan["end_epoch"]
    taken = 0
    for r in range(g_old):
        hs = helpers(r, g_old, g_new)
        if g not in hs:
            continue
        mine, n = hs.index(g), len(hs)
        e0, p0 = plan["cursors"][r]
        j = 0
        for e, _, s in reader(r, g_old).samples(e0, p0):
            if e > end:
                break
            if j % n == mine:
                taken += 1
                if taken > skip:
                    yield REMAINDER, taken, s
            j += 1


def epoch_lengths(reader: Callable[[int, int], object], counts: dict[str, int | None], g: int, G: int,
                  epoch: int) -> int | None:
    """Samples reader g of G reads in `epoch` (None when a shard's count is unknown)."""
    rd = reader(g, G)
    files = rd.assignment(epoch)
    if any(counts.get(f) is None for f in files):
        return None
    if not rd.sample_split:
        return sum(counts[f] for f in files)
    total = sum(counts[f] for f in files)
    return len(range(g, total, G))


def skip_unfinished(reader, counts, states: list[dict], name: str, stats: Counter) -> int:
    """Nested reshard: the epoch the new layout starts at, counting what is left unread of every epoch begun."""
    plan = (states[0].get("reshard") or {}).get(name)
    cur = old_cursors(states, name)
    g_old = len(cur)
    end = plan["end_epoch"] if plan else max(e for e, _ in cur)
    start = max([e for e, _ in cur] + [end]) + 1
    left: int | None = 0

    def add(n):
        nonlocal left
        left = None if left is None or n is None else left + n

    if plan:  # what the previous plan's remainder still held, less what its readers took
        for r, (e0, p0) in enumerate(plan["cursors"]):
            n0 = [epoch_lengths(reader, counts, r, plan["from_readers"], e) for e in range(e0, end + 1)]
            add(None if None in n0 else sum(n0) - p0)
        add(-sum(p for e, p in cur if e == REMAINDER))
    for g, (e, p) in enumerate(cur):
        first = end + 1 if e == REMAINDER else e
        for ep in range(first, start):
            n = epoch_lengths(reader, counts, g, g_old, ep)
            add(None if n is None else n - (p if ep == e else 0))
    if left is None:
        stats[f"resharded_unknown_{name}"] += 1
    else:
        stats["resharded_skips"] += left
    return start
