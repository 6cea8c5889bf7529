"""Shards read over HTTP (a real server on 127.0.0.1 started here) and through pipe: commands: the same batches as
from disk, retries after a dropped connection, 404 and stalled shards skipped and counted, exact resume."""
from __future__ import annotations

import os
import time

import pytest
import shard_server
import torch
from test_stream import TENSORS, _cfg, _same, _take, _write

from data_shards import urls
from data_shards.stream import StreamConfig, TrainStream, load_manifest


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("urls"))


@pytest.fixture
def server(shards):
    srv = shard_server.start(shards)
    yield srv
    srv.shutdown()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(urls, "RETRY_DELAYS", (0.05, 0.1, 0.2))


def _keys(stream):
    return [b["keys"] for b in stream]


def test_http_gives_the_batches_of_the_disk(shards, server):
    assert load_manifest(server.url)["streams"].keys() == load_manifest(shards)["streams"].keys()
    for workers in (0, 2):
        a = _take(TrainStream(_cfg(shards, num_workers=workers)), 6)
        b = _take(TrainStream(_cfg(server.url, num_workers=workers)), 6)
        assert _same(a, b)


def test_dropped_connection_is_retried(shards, server):
    man = load_manifest(shards)
    name = man["streams"]["syn"]["shards"][0]["file"]
    server.drop[name] = 2  # the first two downloads of this shard break half-way
    s = TrainStream(_cfg(server.url))
    got = _take(s, 8)
    assert _same(got, _take(TrainStream(_cfg(shards)), 8))  # nothing lost, nothing repeated
    assert s.stats["read_retries"] == 2 and s.stats["unreachable_shards"] == 0
    assert server.requests.count(name) >= 3


def test_missing_and_stalled_shards_are_skipped_and_counted(shards, server):
    man = load_manifest(shards)
    files = [x["file"] for x in man["streams"]["real"]["shards"]]
    server.missing.add(files[0])
    server.stall[files[1]] = 1.0
    t0 = time.time()
    s = TrainStream(_cfg(server.url, read_timeout=0.3))
    batches = _take(s, 12)
    assert all(torch.isfinite(b[k]).all() for b in batches for k in TENSORS)
    assert s.stats["missing_shards"] >= 1 and s.stats["unreachable_shards"] >= 1
    assert time.time() - t0 < 60  # nothing hangs: the stalled shard is given up after its retries
    keys = {k for b in batches for k in b["keys"]["real"]}
    assert keys and not any(k.startswith(files[0].split(".")[0]) for k in keys)


def test_pipe_cat_gives_the_batches_of_the_disk(shards):
    a = _take(TrainStream(_cfg(shards)), 5)
    b = _take(TrainStream(_cfg(f"pipe:cat {shards}/{{}}")), 5)
    assert _same(a, b)
    s = TrainStream(_cfg(f"pipe:cat {shards}/{{}}"))
    with pytest.raises(ValueError, match="needs \\{\\}"):
        urls.join("pipe:cat shards/", "x.tar")
    assert s.manifest["format"]


def test_resume_over_http_equals_an_uninterrupted_run(shards, server):
    full = _take(TrainStream(_cfg(server.url, num_workers=2)), 8)
    s = TrainStream(_cfg(server.url, num_workers=2))
    first = _take(s, 3)
    state = s.state_dict()
    r = TrainStream(_cfg(server.url, num_workers=2))
    r.load_state_dict(state)
    assert _same(first + _take(r, 5), full)


def test_unreachable_manifest_is_one_error(server):
    server.missing.add("manifest.json")
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        TrainStream(StreamConfig(server.url, patch_size=16, batch_size=4, num_workers=0))
    with pytest.raises(FileNotFoundError, match="cannot read the manifest"):
        load_manifest("http://127.0.0.1:9/nothing", timeout=0.5)


def test_hand_written_manifest_with_patterns_and_a_stream_elsewhere(shards, server, tmp_path):
    """A manifest that lists syn by a brace pattern (relative) and real by an absolute URL pattern on the server:
    the same batches as the writer's manifest (counts unknown is fine)."""
    import json

    man = load_manifest(shards)
    syn = [s["file"] for s in man["streams"]["syn"]["shards"]]
    real = [s["file"] for s in man["streams"]["real"]["shards"]]
    hand = json.loads(json.dumps(man))
    hand["streams"]["syn"] = {"pattern": f"syn-{{000000..{len(syn) - 1:06d}}}.tar"}
    hand["streams"]["real"] = {"pattern": f"{server.url}/real-{{000000..{len(real) - 1:06d}}}.tar"}
    d = tmp_path / "hand"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(hand))
    for f in syn:
        os.symlink(os.path.join(shards, f), d / f)
    got = load_manifest(str(d))
    assert [s["file"] for s in got["streams"]["syn"]["shards"]] == syn
    assert got["streams"]["real"]["shards"][0]["count"] is None
    assert _same(_take(TrainStream(_cfg(str(d))), 5), _take(TrainStream(_cfg(shards)), 5))
