"""Elastic resume of the data stream (data_shards.reshard): an epoch begun on G readers finishes on G' readers with
no sample repeated or lost; a second reshard within the same epoch counts what it skips; old states still load."""
from __future__ import annotations

from collections import Counter

import pytest
from test_stream import _cfg, _take, _write

from data_shards import reshard as rs
from data_shards.shard_reader import ShardReader
from data_shards.stream import TrainStream, load_manifest


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("reshard"), n_syn=16, n_real=12, maxcount=2)


def _keys(batches, stream="syn"):
    return [k for b in batches for k in b["keys"][stream]]


@pytest.mark.parametrize("g_old, g_new, taken", [(2, 1, 5), (1, 2, 11), (4, 3, 3), (2, 3, 6), (3, 2, 7),
                                                 (4, 1, 2)])
def test_remainder_covers_the_epoch_exactly(shards, g_old, g_new, taken):
    """Raw samples: what G old readers consumed (`taken` each, across an epoch boundary for some) plus the new
    readers' remainders = every sample of epochs 0..end exactly once per epoch."""
    man = load_manifest(shards)
    info = man["streams"]["syn"]
    n = sum(s["count"] for s in info["shards"])

    def reader(g, G):
        return ShardReader(shards, info, "syn", 0, g, G, 4, Counter())

    seen, cursors = Counter(), []
    for g in range(g_old):
        it = reader(g, g_old).samples()
        cur = (0, 0)
        for _ in range(taken + g):  # uneven progress across readers
            e, p, s = next(it)
            seen[s["__key__"]] += 1
            cur = (e, p)
        cursors.append(cur)
    plan = {"from_readers": g_old, "cursors": [list(c) for c in cursors], "end_epoch": max(e for e, _ in cursors)}
    shares = [[s["__key__"] for _, _, s in rs.remainder(reader, plan, g, g_new, 0)] for g in range(g_new)]
    for sh in shares:
        seen.update(sh)
    assert len(seen) == n and set(seen.values()) == {plan["end_epoch"] + 1}, seen
    # a new reader resumed inside its share continues where it stopped
    if shares[0]:
        k = len(shares[0]) // 2
        assert [s["__key__"] for _, _, s in rs.remainder(reader, plan, 0, g_new, k)] == shares[0][k:]


def _run(shards, world, states=None, batches=3, workers=0):
    """Each rank of a `world`-rank stream takes `batches` batches; returns (keys per rank, states, streams)."""
    out, new_states, streams = [], [], []
    for r in range(world):
        st = TrainStream(_cfg(shards, num_workers=workers), r, world)
        if states is not None:
            st.load_resharded(states)
        out.append(_keys(_take(st, batches)))
        new_states.append(st.state_dict())
        streams.append(st)
    return out, new_states, streams


@pytest.mark.parametrize("w_old, w_new, workers", [(2, 1, 0), (1, 2, 0), (2, 1, 2)])
def test_train_stream_resharded_repeats_and_loses_nothing(shards, w_old, w_new, workers):
    man = load_manifest(shards)
    n = sum(s["count"] for s in man["streams"]["syn"]["shards"])  # 16 per epoch
    old, states, _ = _run(shards, w_old, batches=3, workers=workers)  # 12 samples per rank: into epoch 1 for some
    consumed = Counter(k for ks in old for k in ks)
    new, _, streams = _run(shards, w_new, states, batches=6, workers=workers)
    plan = streams[0].reshard["syn"]
    end = plan["end_epoch"]
    G = w_new * max(1, workers)
    info = man["streams"]["syn"]
    share = [len(list(rs.remainder(lambda g, m: ShardReader(shards, info, "syn", 0, g, m, 4, Counter()), plan, g, G,
                                   0))) for g in range(G)]
    # the new readers' first samples are their shares of the remainder (one reader per rank here when workers=0)
    if workers == 0:
        for r in range(w_new):
            consumed.update(new[r][:share[r]])
        assert len(consumed) == n and set(consumed.values()) == {end + 1}, consumed
    else:  # rank batches alternate between the workers: count every key over old + all new samples instead
        total = Counter(k for ks in old + new for k in ks)
        assert sum(total.values()) == sum(map(len, old + new)) and min(total.values()) >= end + 1
    assert streams[0].stats["resharded_repeats"] == 0 and streams[0].stats["resharded_skips"] == 0
    assert all("resharded_skips" not in s.stats for s in streams[1:])  # counted once, on rank 0


def test_resharded_state_resumes_exactly_at_its_world_size(shards):
    _, states, _ = _run(shards, 2, batches=3)
    a = TrainStream(_cfg(shards), 0, 1)
    a.load_resharded(states)
    head = _take(a, 2)
    b = TrainStream(_cfg(shards), 0, 1)
    b.load_state_dict(a.state_dict())
    assert b.state_dict()["version"] == rs.STATE_VERSION and b.reshard == a.reshard
    ref = TrainStream(_cfg(shards), 0, 1)
    ref.load_resharded(states)
    assert _keys(_take(b, 3)) == _keys(_take(ref, 5))[len(_keys(head)):]


def test_second_reshard_within_the_epoch_counts_what_it_skips(shards):
    man = load_manifest(shards)
    n = sum(s["count"] for s in man["streams"]["syn"]["shards"])
    old, states, _ = _run(shards, 2, batches=1)  # 8 of 16 samples of epoch 0
    mid, states2, streams = _run(shards, 1, states, batches=1)  # 4 of the 8 remaining
    assert streams[0].state_dict()["workers"][0]["cursors"]["syn"][0] == rs.REMAINDER
    _, _, again = _run(shards, 2, states2, batches=1)
    skips = again[0].stats["resharded_skips"]
    seen = Counter(k for ks in old + mid for k in ks)
    assert skips == n - len(seen) == 4  # the 4 samples of epoch 0 never read
    assert all(c[0] == 1 for s in again for pl in s._plans for c in pl.cursors.values())  # epoch 1 starts


def test_old_format_state_still_resumes_at_its_world_size(shards):
    st = TrainStream(_cfg(shards), 0, 1)
    head = _keys(_take(st, 2))
    state = st.state_dict()
    for k in ("version", "reshard"):  # a state written before they existed (format 1)
        state.pop(k)
    b = TrainStream(_cfg(shards), 0, 1)
    b.load_state_dict(state)
    assert _keys(_take(b, 1)) == _keys(_take(TrainStream(_cfg(shards), 0, 1), 3))[len(head):]
    with pytest.raises(ValueError, match="world_size"):
        TrainStream(_cfg(shards), 0, 2).load_state_dict(state)
