"""Shards read over HTTP (a real server on 127.0.0.1 started here) and through pipe: commands: the same batches as
from disk, Range resumption after a dropped connection (and the fallback when a server ignores Range), 404, stalled
and trickling shards skipped and counted, pipe: commands killed as a process group, manifests that may not name
commands or other hosts, the writer's sha256 checked, exact resume."""
from __future__ import annotations

import json
import os
import shlex
import threading
import time

import pytest
import shard_server
import torch
from test_stream import TENSORS, _cfg, _same, _take, _write

from data_shards import urls
from data_shards.stream import DataError, StreamConfig, TrainStream, load_manifest


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


def _size(shards, name):
    return os.path.getsize(os.path.join(shards, name))


def test_dropped_connection_resumes_with_range(shards, server):
    man = load_manifest(shards)
    name = man["streams"]["syn"]["shards"][0]["file"]
    server.drop[name] = 2  # the first two transfers of this shard break half-way (of what they were to send)
    s = TrainStream(_cfg(server.url))  # 4 batches: one epoch of syn, every shard read once
    got = _take(s, 4)
    assert _same(got, _take(TrainStream(_cfg(shards)), 4))  # nothing lost, nothing repeated
    assert s.stats["read_retries"] == 2 and s.stats["unreachable_shards"] == 0
    assert server.requests.count(name) == 3
    assert server.sent[name] == _size(shards, name)  # resumed at the byte it broke: each byte sent once


def test_server_that_ignores_range_is_re_read_and_skipped(shards, server):
    man = load_manifest(shards)
    name = man["streams"]["syn"]["shards"][0]["file"]
    server.ranges = False
    server.drop[name] = 1
    s = TrainStream(_cfg(server.url))
    got = _take(s, 4)
    assert _same(got, _take(TrainStream(_cfg(shards)), 4))
    assert s.stats["read_retries"] == 1 and s.stats["unreachable_shards"] == 0
    size = _size(shards, name)
    assert server.sent[name] == size // 2 + size  # the cut half, then the whole file again from byte 0


def test_trickling_shard_is_given_up_as_slow(shards, server):
    """A server that keeps sending 100 B/s never trips the per-read deadline: the rate bound gives it up."""
    man = load_manifest(shards)
    files = [x["file"] for x in man["streams"]["real"]["shards"]]
    server.trickle[files[1]] = 100
    t0 = time.time()
    s = TrainStream(_cfg(server.url, read_timeout=5, min_rate=2000, rate_window=0.5))
    batches = _take(s, 2)  # 8 samples: all from epoch 0 (10 readable samples, a buffer of 4)
    took = time.time() - t0
    assert s.stats["slow_shards"] == 1 and s.stats["unreachable_shards"] == 0
    assert s.stats["read_retries"] == 3  # 4 attempts (each resumed at the byte reached), then given up
    assert 4 * 0.5 <= took < 30
    keys = {k for b in batches for k in b["keys"]["real"]}
    assert keys and not any(k.startswith(files[1].split(".")[0]) for k in keys)


def test_trickling_pipe_is_cut_and_pauses_between_reads_do_not_count(tmp_path):
    lim = urls.Limits(timeout=5, min_rate=1000, rate_window=0.3)
    t0 = time.time()
    with pytest.raises(urls.ShardSlow, match="below the minimum"):
        with urls.open_url("pipe:while true; do printf x; sleep 0.01; done", lim) as f:
            f.read()
    assert time.time() - t0 < 5
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(200_000))
    lim = urls.Limits(timeout=5, min_rate=150_000, rate_window=0.3)
    with urls.open_url(f"pipe:cat {small}", lim) as f:  # a consumer slower than the store is not a slow store:
        time.sleep(0.5)  # (by wall time, 40 KB per 0.35 s would be 114 KB/s, below the bound)
        parts = []
        for _ in range(5):
            parts.append(f.read(40_000))
            time.sleep(0.35)
    assert b"".join(parts) == small.read_bytes()


def test_default_rate_bound_is_one_a_store_passes():
    assert StreamConfig("x").min_rate >= 16 * 1024 and StreamConfig("x").rate_window <= 60
    with pytest.raises(ValueError, match="min_rate"):
        StreamConfig("x", min_rate=-1)


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


def test_compound_pipe_command_that_hangs_is_killed_as_a_group(shards, tmp_path):
    """`sleep; cat` with a 1 s deadline: the whole process group dies at each deadline (not only `sh`), so the
    file is given up after about deadline × attempts, and nothing of the command is left running."""
    marker = "30.4127"
    t0 = time.time()
    with pytest.raises(urls.ShardReadError, match="unreadable after 4 attempts"):
        urls.read_all(f"pipe:sleep {marker}; cat {shards}/manifest.json", urls.Limits(timeout=1.0))
    took = time.time() - t0
    assert 4 * 1.0 <= took < 4 * 1.0 + 0.35 + 5
    time.sleep(0.2)
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).endswith(f"sleep {marker}")]
    assert not left


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_pipe_reads_start_no_thread_per_read(tmp_path):
    """A 24 MB file through pipe:cat in tar-sized (10 KiB) reads: the thread count never grows, bytes intact."""
    big = tmp_path / "big.bin"
    data = os.urandom(24 << 20)
    big.write_bytes(data)
    before, peak, got = threading.active_count(), 0, []
    with urls.open_url(f"pipe:cat {big}", urls.Limits(timeout=10)) as f:
        while True:
            b = f.read(10240)
            if not b:
                break
            got.append(b)
            peak = max(peak, threading.active_count())
    assert b"".join(got) == data and peak <= before


def test_pipe_file_name_is_shell_quoted():
    assert urls.join("pipe:cat /d/{}", "a b;touch x.tar") == "pipe:cat /d/" + shlex.quote("a b;touch x.tar")
    assert urls.join("pipe:cat /d/{}", "syn-000001.tar") == "pipe:cat /d/syn-000001.tar"


@pytest.mark.parametrize("entry", ["pipe:touch {flag}; cat {shards}/{f}", "/etc/{f}", "http://evil.example/{f}",
                                   "../{f}", "s3://bucket/{f}"])
def test_manifest_entries_are_relative_names(entry, shards, tmp_path):
    flag = tmp_path / "FLAG"
    man = json.loads(open(os.path.join(shards, "manifest.json")).read())
    f0 = man["streams"]["syn"]["shards"][0]["file"]
    man["streams"]["syn"]["shards"][0]["file"] = entry.format(flag=flag, shards=shards, f=f0)
    d = tmp_path / "m"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match="relative to its own location") as e:
        load_manifest(str(d))
    assert "\n" not in str(e.value) and not flag.exists()


def test_hostile_manifest_over_http_runs_nothing_unless_trusted(shards, server, tmp_path):
    """A manifest served over HTTP whose shards are `pipe:touch FLAG; cat …`: refused in one line, nothing run;
    with trust_manifest_locations the user's opt-in makes it work."""
    flag = tmp_path / "FLAG"
    man = json.loads(open(os.path.join(shards, "manifest.json")).read())
    for info in man["streams"].values():
        for sh in info["shards"]:
            sh["file"] = f"pipe:touch {flag}; cat {shards}/{sh['file']}"
            sh.pop("sha256", None)
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    server.files["manifest.json"] = str(tmp_path / "manifest.json")
    with pytest.raises(DataError, match="which is a pipe: command") as e:
        _take(TrainStream(_cfg(server.url)), 1)
    assert len(str(e.value).splitlines()) == 1 and not flag.exists()
    got = _take(TrainStream(_cfg(server.url, trust_manifest_locations=True)), 4)
    assert flag.exists() and _same(got, _take(TrainStream(_cfg(shards)), 4))


def test_sha256_of_a_remote_shard_read_whole_is_checked(shards, server, tmp_path):
    man = load_manifest(shards)
    name = man["streams"]["syn"]["shards"][0]["file"]
    data = bytearray(open(os.path.join(shards, name), "rb").read())
    assert data[-1] == 0  # tar padding after the end-of-archive blocks: the samples stay the same
    data[-1] = 1
    (tmp_path / name).write_bytes(bytes(data))
    server.files[name] = str(tmp_path / name)
    s = TrainStream(_cfg(server.url))
    got = _take(s, 4)
    assert _same(got, _take(TrainStream(_cfg(shards)), 4))
    assert s.stats["sha256_mismatches"] == 1
    for ok in (TrainStream(_cfg(shards)), TrainStream(_cfg(server.url, verify_sha256=False))):
        _take(ok, 4)
        assert ok.stats["sha256_mismatches"] == 0


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
    refused unless the user trusts it; then the same batches as the writer's manifest (counts unknown is fine)."""
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
    with pytest.raises(DataError, match="which is a URL"):
        load_manifest(str(d))
    got = load_manifest(str(d), trust=True)
    assert [s["file"] for s in got["streams"]["syn"]["shards"]] == syn
    assert got["streams"]["real"]["shards"][0]["count"] is None
    assert _same(_take(TrainStream(_cfg(str(d), trust_manifest_locations=True)), 5),
                 _take(TrainStream(_cfg(shards)), 5))
