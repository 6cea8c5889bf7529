"""Trainer (single process, in-process DeepSpeed on CPU/gloo): loss falls, exact resume, gradient accumulation,
exports that reproduce the evaluation, run-directory protection."""
import json

import pytest
import torch

from daa.config import ConfigError, load_config
from daa.export import load_restorer
from daa.training.evaluation import evaluate
from daa.training.trainer import Trainer
from data_shards.synthetic import SyntheticStream

BASE = ["model.restorer_args={depth: 2, wf: 16}", "data.patch_size=16", "run.tensorboard=false",
        "run.global_batch=8", "run.micro_batch=4", "data.val=", "optim.lr=2e-3", "objective.alpha_ramp_images=200",
        "run.ema_half_life_images=100", "run.sample_images=2"]


def _cfg(tmp_path, *extra):
    return load_config("demo", BASE + [f"run.run_dir={tmp_path}"] + list(extra))


def _val():
    b = SyntheticStream(6, 16, seed=123).batch(0)
    return b["x_s"].clamp(0, 1), b["y_s"]


def _train(cfg, stream=None):
    t = Trainer(cfg, stream=stream or SyntheticStream(cfg.run.micro_batch, 16), valset=_val())
    res = t.fit()
    t.close()
    return t, res


def _stats(run_dir):
    return [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", ["baseline", "daa"])
def test_loss_falls_and_both_networks_train(tmp_path, mode, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    cfg = _cfg(tmp_path, f"objective.mode={mode}", "run.total_images=480", "run.log_every_images=8",
               "run.eval_every_images=480", "run.ckpt_every_images=480")
    torch.manual_seed(0)
    t, res = _train(cfg)
    losses = [s["loss"] for s in _stats(tmp_path) if "loss" in s]
    assert losses[-1] < 0.6 * losses[0], losses
    assert res["val/psnr"] > res["val/input_psnr"] - 5  # sanity: evaluation ran on the EMA restorer
    assert (tmp_path / "export" / "restorer_ema.safetensors").is_file()
    assert list((tmp_path / "samples").glob("*.png"))
    if mode == "daa":
        assert any(s.get("noise", 0) > 0 for s in _stats(tmp_path))


def test_alpha_cool_down_reaches_the_steps(tmp_path, monkeypatch):
    """objective.alpha_decay_*: the α each step trains with follows the ramp, then falls to 0 (stats.jsonl)."""
    from daa.objective import alpha_at

    monkeypatch.setenv("DAA_NO_TQDM", "1")
    cfg = _cfg(tmp_path, "objective.mode=daa", "run.total_images=96", "run.log_every_images=8",
               "run.eval_every_images=96", "run.ckpt_every_images=96", "objective.alpha_max=1.0",
               "objective.alpha_decay_start_images=32", "objective.alpha_decay_images=32")
    _train(cfg)
    logged = [(s["images_seen"], s["alpha"]) for s in _stats(tmp_path) if "alpha" in s]
    assert len(logged) == 12
    for seen, a in logged:  # one step (two micro-steps of 4 images) per log line: the mean of their α
        assert a == pytest.approx((alpha_at(seen - 8, cfg.objective) + alpha_at(seen - 4, cfg.objective)) / 2)
    assert all(a == 0.0 for seen, a in logged if seen > 64) and max(a for _, a in logged) > 0.05


def test_resume_continues_exactly(tmp_path, monkeypatch):
    """Stop after checkpoint N, rerun the same config with a larger budget: the result equals one long run."""
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    common = ["run.deterministic=true", "run.log_every_images=16", "run.ckpt_every_images=32",
              "run.eval_every_images=10000"]
    full, _ = _train(_cfg(tmp_path / "full", *common, "run.total_images=64"))
    _train(_cfg(tmp_path / "cut", *common, "run.total_images=32"))
    resumed, _ = _train(_cfg(tmp_path / "cut", *common, "run.total_images=64"))
    assert resumed.images_seen == full.images_seen == 64
    for (n, a), b in zip(full.engine.module.named_parameters(), resumed.engine.module.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=n)
    for a, b in zip(full.ema.module.parameters(), resumed.ema.module.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    la = [s["loss"] for s in _stats(tmp_path / "full") if "loss" in s]
    lb = [s["loss"] for s in _stats(tmp_path / "cut") if "loss" in s]
    assert la == lb  # same losses at every logged interval, before and after the restart


class _Chunks:
    """Yields the rows of one fixed big batch in chunks of `micro`."""

    def __init__(self, big, micro):
        self.big, self.micro = big, micro

    def __iter__(self):
        while True:
            for i in range(0, len(self.big["x_s"]), self.micro):
                yield {k: v[i:i + self.micro] for k, v in self.big.items()}


def test_gradient_accumulation_matches_big_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    big = SyntheticStream(8, 16, seed=5).batch(0)
    ws = []
    for micro in (2, 8):  # 4 accumulated micro-batches of 2 vs one batch of 8
        cfg = _cfg(tmp_path / f"m{micro}", "objective.mode=baseline", f"run.micro_batch={micro}",
                   "run.total_images=8", "run.log_every_images=8", "run.ckpt_every_images=100",
                   "run.eval_every_images=100")
        torch.manual_seed(0)
        t = Trainer(cfg, stream=_Chunks(big, micro), valset=None)
        assert t.accum == 8 // micro
        t.fit()
        ws.append(torch.cat([p.detach().flatten() for p in t.engine.module.parameters()]))
        t.close()
    torch.testing.assert_close(ws[0], ws[1], rtol=1e-4, atol=1e-6)
    assert (ws[0] - ws[1]).abs().max() < 1e-5


def test_export_reproduces_trainer_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    cfg = _cfg(tmp_path, "objective.mode=baseline", "run.total_images=64", "run.log_every_images=32",
               "run.eval_every_images=64", "run.ckpt_every_images=64")
    _, res = _train(cfg)
    net, meta = load_restorer(tmp_path / "export" / "restorer_ema.safetensors")
    assert meta["restorer"] == "unet" and meta["ema"] and tuple(meta["value_range"]) == (0.0, 1.0)
    x, y = _val()
    got, _ = evaluate(net, x, y, tuple(meta["value_range"]), "cpu")
    assert got["val/psnr"] == pytest.approx(res["val/psnr"], abs=1e-9)


def test_run_dir_refuses_a_different_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    _train(_cfg(tmp_path, "objective.mode=baseline", "run.total_images=8", "run.log_every_images=8",
                "run.ckpt_every_images=8", "run.eval_every_images=100"))
    with pytest.raises(ConfigError, match="different config.*optim.lr"):
        Trainer(_cfg(tmp_path, "objective.mode=baseline", "optim.lr=1e-2"), stream=SyntheticStream(4, 16))


def test_incomplete_checkpoint_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    args = ["objective.mode=baseline", "run.log_every_images=8", "run.ckpt_every_images=8",
            "run.eval_every_images=100"]
    _train(_cfg(tmp_path, *args, "run.total_images=16"))
    (tmp_path / "checkpoints" / "step000000099").mkdir()  # a save that was cut off: no COMPLETE marker
    with pytest.warns(UserWarning, match="incomplete"):
        t = Trainer(_cfg(tmp_path, *args, "run.total_images=24"), stream=SyntheticStream(4, 16), valset=None)
    assert t.images_seen == 16
    t.close()


def test_resume_with_another_run_kernels(tmp_path, monkeypatch):
    """run.kernels is declared resumable (it picks an implementation, not the maths): a run started with one and
    resumed with another continues, and the config is not mutated by building the objective."""
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    args = ["objective.mode=daa", "run.log_every_images=8", "run.ckpt_every_images=8", "run.eval_every_images=100"]
    cfg = _cfg(tmp_path, *args, "run.total_images=8", "run.kernels=torch")
    before = cfg.to_dict()
    _train(cfg)
    assert cfg.to_dict() == before and cfg.objective.kernels is None
    t, _ = _train(_cfg(tmp_path, *args, "run.total_images=16", "run.kernels=auto"))
    assert t.images_seen == 16


@pytest.mark.parametrize("restorer, per_step", [("unet", 1), ("dncnn", 2)])
def test_host_syncs_per_optimizer_step(tmp_path, monkeypatch, restorer, per_step):
    """The CPU stand-in for CUDA sync debug mode: count the tensor → host reads (item, bool, float,
    int, tolist) that the trainer's own code makes inside train_step. One per step: the all-reduced pair of
    non-finite flags; the loss terms are read only at log time. A BatchNorm restorer adds the input check that must
    come before its forward. (DeepSpeed's own grad-norm check and torch Adam's CPU step counter are not ours.)"""
    import os
    import traceback

    monkeypatch.setenv("DAA_NO_TQDM", "1")
    extra = ["model.restorer=dncnn", "model.restorer_args={num_of_layers: 4, features: 8}"] \
        if restorer == "dncnn" else []
    t = Trainer(_cfg(tmp_path, "objective.mode=daa", "run.global_batch=4", "run.micro_batch=4", *extra),
                stream=SyntheticStream(4, 16), valset=None)
    it = iter(t.stream)
    t.train_step(it)  # warm-up (optimizer state)
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__import__("daa").__file__)))
    calls = []

    def counting(name):
        orig = getattr(torch.Tensor, name)

        def f(self, *a, **k):
            frame = traceback.extract_stack(limit=3)[-2]
            if os.path.abspath(frame.filename).startswith(os.path.join(ours, "daa")):
                calls.append(f"{os.path.basename(frame.filename)}:{frame.lineno} {name}")
            return orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, f)

    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        counting(name)
    steps = 3
    for _ in range(steps):
        terms = t.train_step(it)
    monkeypatch.undo()
    assert len(calls) == per_step * steps, calls
    assert all(torch.is_tensor(v) for v in terms.values())  # not read yet
    t.close()


def test_batch_arithmetic_fails_before_the_group_forms(tmp_path, monkeypatch):
    """Under a launcher (WORLD_SIZE set) a global batch the world cannot split is refused before any process group
    is formed: every rank fails alone with the one-line error, none is left joining a group the others have left."""
    import daa.training.trainer as trainer_mod

    def no_group(*a, **k):
        raise AssertionError("the process group was formed before the batch arithmetic was checked")

    monkeypatch.setattr(trainer_mod, "init_distributed", no_group)
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = _cfg(tmp_path, "run.global_batch=6", "run.micro_batch=2")
    with pytest.raises(ConfigError, match="not a multiple of micro_batch × world size = 2 × 2"):
        Trainer(cfg, stream=SyntheticStream(2, 16), valset=_val())
    assert not any(tmp_path.iterdir())  # nothing written into the run directory


class _NaNAt(SyntheticStream):
    """A synthetic stream whose batches at the given absolute indices carry a NaN (resume-safe: by index)."""

    def __init__(self, *a, bad=(), **k):
        super().__init__(*a, **k)
        self.bad = set(bad)

    def batch(self, index):
        b = super().batch(index)
        if index in self.bad:
            b["x_s"][0, 0, 0, 0] = float("nan")
        return b


def test_accumulation_keeps_its_phase_after_a_skipped_micro_batch(tmp_path, monkeypatch):
    """grad_accum 2 and one NaN batch (the 2nd micro-batch of the 1st step): the skipped micro-batch is replaced, so
    DeepSpeed's micro-step count stays a multiple of grad_accum after every train_step and each optimizer step
    averages grad_accum finite micro-batches."""
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    t = Trainer(_cfg(tmp_path, "objective.mode=daa"), stream=_NaNAt(4, 16, bad={1}), valset=None)
    assert t.accum == 2
    it = iter(t.stream)
    for n in range(1, 5):
        terms = t.train_step(it)
        assert t.engine.micro_steps % t.accum == 0, (n, t.engine.micro_steps)
        assert t.engine.global_steps == n and torch.isfinite(terms["loss"])
    assert t.skipped_steps == 1 and t.stream.consumed == 9 and t.images_seen == 36  # 8 used + 1 skipped
    assert all(bool(torch.isfinite(p).all()) for p in t.engine.module.parameters())
    t.save_checkpoint()
    t.close()
    r = Trainer(_cfg(tmp_path, "objective.mode=daa"), stream=_NaNAt(4, 16, bad={1}), valset=None)
    assert (r.skipped_steps, r.images_seen, r.stream.consumed) == (1, 36, 9)  # the skip count survives a resume
    r.close()


def test_a_stream_of_nonfinite_batches_stops_the_run(tmp_path, monkeypatch):
    import daa.training.trainer as trainer_mod

    monkeypatch.setenv("DAA_NO_TQDM", "1")
    monkeypatch.setattr(trainer_mod, "MAX_NONFINITE_IN_A_ROW", 3)
    t = Trainer(_cfg(tmp_path, "objective.mode=baseline"), stream=_NaNAt(4, 16, bad=range(100)), valset=None)
    with pytest.raises(trainer_mod.NonFiniteError, match="4 micro-batches in a row had a non-finite input"):
        t.train_step(iter(t.stream))
    t.close()
