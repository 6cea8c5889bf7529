"""Streaming reader: shard split across ranks/workers, independent real stream, corruption, determinism, resume."""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from data_shards import write
from data_shards.shard_reader import ShardReader
from data_shards.stream import StreamConfig, TrainStream, load_manifest

TENSORS = ("x_s", "y_s", "x_r")


def _write(root, n_syn=16, n_real=12, maxcount=2, size=(32, 36), extra=()):
    rng = np.random.default_rng(0)
    for i in range(n_syn):
        g = (rng.random((*size, 3)) * 255).astype(np.uint8)
        os.makedirs(root / "gt", exist_ok=True)
        os.makedirs(root / "syn", exist_ok=True)
        Image.fromarray(g).save(root / "gt" / f"{i:03d}.png")
        Image.fromarray(255 - g).save(root / "syn" / f"{i:03d}.png")
    for i in range(n_real):
        os.makedirs(root / "real", exist_ok=True)
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(root / "real" / f"{i:03d}.png")
    out = root / "shards"
    assert write.main(["--task", "derain", "--syn", str(root / "syn"), "--gt", str(root / "gt"), "--real",
                       str(root / "real"), "--out", str(out), "--maxcount", str(maxcount), "-q", *extra]) == 0
    return str(out)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("stream"))


def _cfg(d, **kw):
    base = dict(patch_size=16, batch_size=4, num_workers=0, shuffle_buffer=4, return_keys=True)
    return StreamConfig(d, **{**base, **kw})


def _take(stream, n):
    it = iter(stream)
    out = [next(it) for _ in range(n)]
    it.close()
    return out


def _same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in TENSORS) and \
        [x["keys"] for x in a] == [y["keys"] for y in b]


def test_batch_shapes_and_ranges(shards):
    (b,) = _take(TrainStream(_cfg(shards)), 1)
    for k in TENSORS:
        assert b[k].shape == (4, 3, 16, 16) and b[k].dtype == torch.float32 and 0 <= b[k].min() <= b[k].max() <= 1
    # syn and gt share the crop and the dihedral transform (syn = 255 - gt here)
    assert torch.allclose(b["x_s"], 1 - b["y_s"], atol=1e-6)


def test_two_ranks_two_workers_read_disjoint_shards_covering_all(shards):
    man = load_manifest(shards)
    for name in ("syn", "real"):
        all_keys = set()
        for shard in man["streams"][name]["shards"]:
            with tarfile.open(os.path.join(shards, shard["file"])) as t:
                all_keys |= {m.name.split(".")[0] for m in t.getmembers()}
        for epoch in (0, 1):
            files, keys = [], []
            for rank in (0, 1):
                st = TrainStream(_cfg(shards, num_workers=2), rank, 2)
                for w in (0, 1):
                    files.append(st.assignment(name, epoch, w))
                    r = ShardReader(shards, man["streams"][name], name, 0, rank * 2 + w, 4, 4, Counter())
                    keys.append([s["__key__"] for s in r._epoch(epoch)])
            assert all(files) and all(keys)  # no empty reader
            flat = [f for fs in files for f in fs]
            assert len(flat) == len(set(flat)) == len(man["streams"][name]["shards"])
            kflat = [k for ks in keys for k in ks]
            assert len(kflat) == len(set(kflat)) and set(kflat) == all_keys
    st = TrainStream(_cfg(shards, num_workers=2), 0, 2)
    assert st.assignment("syn", 0) != st.assignment("syn", 1) or st.assignment("syn", 2) != st.assignment("syn", 0)


def test_real_stream_is_not_paired_to_the_synthetic_index(shards):
    batches = _take(TrainStream(_cfg(shards, batch_size=4)), 8)  # 32 syn samples = 2 epochs of 16
    pairs = [(s, r) for b in batches for s, r in zip(b["keys"]["syn"], b["keys"]["real"])]
    e0, e1 = dict(pairs[:16]), dict(pairs[16:])
    assert set(e0) == set(e1)  # the same synthetic samples in both epochs…
    assert sum(e0[k] != e1[k] for k in e0) >= 12  # …paired with different real samples
    # different streams are shuffled differently (no shared permutation)
    syn_order = [int(k[3:]) for k, _ in pairs[:12]]
    real_order = [int(r[4:]) for _, r in pairs[:12]]
    assert syn_order != real_order


def test_same_seed_same_batches_different_seed_different(shards):
    a = _take(TrainStream(_cfg(shards, seed=3)), 3)
    b = _take(TrainStream(_cfg(shards, seed=3)), 3)
    c = _take(TrainStream(_cfg(shards, seed=4)), 3)
    assert _same(a, b)
    assert not torch.equal(a[0]["y_s"], c[0]["y_s"]) and a[0]["keys"] != c[0]["keys"]
    # num_workers 0 and 1 are the same reader layout
    assert _same(a, _take(TrainStream(_cfg(shards, seed=3, num_workers=1)), 3))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_gives_the_same_next_batches(shards, workers):
    n, k = 5, 5  # 9 batches × 4 = 36 samples: crosses the 16-per-epoch syn boundary; odd n rotates the workers
    full = _take(TrainStream(_cfg(shards, num_workers=workers)), n + k)
    first = TrainStream(_cfg(shards, num_workers=workers))
    head = _take(first, n)
    assert _same(head, full[:n])
    state = first.state_dict()
    assert state["batches"] == n and len(state["workers"]) == max(1, workers)
    resumed = TrainStream(_cfg(shards, num_workers=workers))
    resumed.load_state_dict(state)
    assert _same(_take(resumed, k), full[n:])
    # a second resume from the resumed stream's own state keeps going
    again = TrainStream(_cfg(shards, num_workers=workers))
    again.load_state_dict(resumed.state_dict())
    assert _same(_take(again, 1), _take(TrainStream(_cfg(shards, num_workers=workers)), n + k + 1)[-1:])
    with pytest.raises(ValueError, match="num_workers"):
        TrainStream(_cfg(shards, num_workers=workers + 1)).load_state_dict(state)


def _corrupt(shard_dir):
    """Garble one syn.png member of the first syn shard; truncate the second syn shard in its middle."""
    man = load_manifest(shard_dir)
    first, second = (os.path.join(shard_dir, s["file"]) for s in man["streams"]["syn"]["shards"][:2])
    with tarfile.open(first) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    garbled = False
    with tarfile.open(first, "w") as t:
        for m, data in members:
            if m.name.endswith("syn.png") and not garbled:
                data, garbled = b"\x89PNG\r\n\x1a\ngarbage", True
            m.size = len(data)
            t.addfile(m, io.BytesIO(data))
    size = os.path.getsize(second)
    with open(second, "r+b") as f:
        f.truncate(size // 2)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_member_and_truncated_tar_are_skipped_and_counted(tmp_path, workers):
    d = _write(tmp_path)
    _corrupt(d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = TrainStream(_cfg(d, num_workers=workers))
        batches = _take(st, 8)  # two epochs
        assert all(b["y_s"].shape == (4, 3, 16, 16) for b in batches)
        assert st.stats["corrupt_samples"] >= 1 and st.stats["truncated_shards"] >= 1, st.stats
        if workers == 0:  # (worker processes print their warnings themselves)
            assert any("skipped" in str(w.message) for w in caught)
        # with corruption in the data, resume is still exact (cursors count raw samples)
        full = _take(TrainStream(_cfg(d, num_workers=workers)), 7)
        head = TrainStream(_cfg(d, num_workers=workers))
        _take(head, 3)
        res = TrainStream(_cfg(d, num_workers=workers))
        res.load_state_dict(head.state_dict())
        assert _same(_take(res, 4), full[3:])


def test_fewer_shards_than_readers_is_sample_split(tmp_path):
    d = _write(tmp_path, n_syn=10, n_real=6, maxcount=8)  # syn: 2 shards, real: 1 shard; 2 ranks x 2 workers
    man = load_manifest(d)
    st = TrainStream(_cfg(d, num_workers=2), 1, 2)
    assert st.sample_split == {"syn": True, "real": True}
    keys = []
    for g in range(4):
        r = ShardReader(d, man["streams"]["syn"], "syn", 0, g, 4, 4, Counter())
        keys.append([s["__key__"] for s in r._epoch(0)])
    assert all(keys) and sum(map(len, keys)) == 10 and len({k for ks in keys for k in ks}) == 10
    # every rank still yields full batches
    for rank in (0, 1):
        (b,) = _take(TrainStream(_cfg(d, num_workers=0), rank, 4), 1)
        assert b["x_r"].shape == (4, 3, 16, 16)
    # fewer samples than readers: a one-line error, not a hang
    with pytest.raises(ValueError, match="fewer than the 8 readers"):
        TrainStream(_cfg(d, num_workers=2), 0, 4)


def test_on_the_fly_awgn_small_images_and_ref(tmp_path):
    rng = np.random.default_rng(1)
    os.makedirs(tmp_path / "gt")
    for i in range(6):
        Image.fromarray((rng.random((12, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "gt" / f"{i}.png")
    out = str(tmp_path / "s")
    assert write.main(["--task", "denoise", "--gt", str(tmp_path / "gt"), "--syn-on-the-fly", "--out", out, "-q"]) == 0
    cfg = _cfg(out, with_real=False, with_ref=True, awgn_sigma=(50.0, 50.0), batch_size=6)
    (b,) = _take(TrainStream(cfg), 1)
    assert b["x_s"].shape == b["y_s"].shape == b["y_ref"].shape == (6, 3, 16, 16)  # 12x20 upscaled to a 16 side
    noise = b["x_s"] - b["y_s"]
    assert abs(noise.std().item() - 50 / 255) < 0.02 and (b["x_s"].min() < 0 or b["x_s"].max() > 1)  # unclipped
    assert b["keys"]["ref"] != b["keys"]["syn"]  # the ref stream (from the syn gt) is shuffled independently
    (c,) = _take(TrainStream(_cfg(out, with_real=False, awgn_sigma=(0.0, 0.0), batch_size=6)), 1)
    assert torch.equal(c["x_s"], c["y_s"])


def test_config_errors(shards, tmp_path):
    with pytest.raises(ValueError, match="task"):
        TrainStream(_cfg(shards, task="denoise"))
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        TrainStream(_cfg(str(tmp_path)))
    only_syn = tmp_path / "syn_only"
    shutil.copytree(shards, only_syn)
    man = load_manifest(str(only_syn))
    del man["streams"]["real"]
    (only_syn / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="no 'real' stream"):
        TrainStream(_cfg(str(only_syn)))
    (b,) = _take(TrainStream(_cfg(str(only_syn), with_real=False)), 1)
    assert "x_r" not in b
