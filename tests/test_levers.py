"""The step-speed levers (daa.training.levers): switches that change kernels and layouts, not the maths —
loss and every gradient of both networks within tolerance of the plain step on CPU, and a run may switch them on
resume (they are resumable fields)."""
from __future__ import annotations

import copy
import os

import pytest
import torch

from daa.config import ConfigError, load_config
from daa.models import build_diffusion_unet, build_restorer
from daa.objective import DAAObjective, ObjectiveConfig
from daa.training.levers import apply_levers, to_layout


def _pair(**levers):
    torch.manual_seed(0)
    a = DAAObjective(build_restorer("unet", "tiny"), build_diffusion_unet("tiny", dropout=0.0),
                     ObjectiveConfig(mode="daa", kernels="torch"))
    b = apply_levers(copy.deepcopy(a), levers["compile_mode"])
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand(2, 3, 16, 16, generator=g) for k in ("x_s", "y_s", "x_r")}
    draws = a.draw(2, (3, 16, 16), "cpu", generator=g, noise_generator=g)
    return a, b, batch, draws


def _loss_and_grads(obj, batch, draws, channels_last=False):
    batch = {k: to_layout(v, channels_last) for k, v in batch.items()}
    loss = obj(batch, 0.5, draws)["loss"]
    params = [p for p in obj.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    return loss.detach(), torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("levers", [dict(channels_last=True, compile_mode="none"),
                                    dict(channels_last=False, compile_mode="networks"),
                                    dict(channels_last=False, compile_mode="blocks")],
                         ids=["channels_last", "compile-networks", "compile-blocks"])
def test_lever_keeps_loss_and_gradients(levers, monkeypatch):
    # compile: aot_eager on CPU — dynamo's graph capture and AOT autograd as on a GPU, without inductor's minutes of
    # C++ code generation (set DAA_COMPILE_BACKEND=inductor to test that too)
    monkeypatch.setenv("DAA_COMPILE_BACKEND", os.environ.get("DAA_COMPILE_BACKEND", "aot_eager"))
    a, b, batch, draws = _pair(**levers)
    la, ga = _loss_and_grads(a, batch, draws)
    lb, gb = _loss_and_grads(b, batch, draws, levers["channels_last"])
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-6)
    assert (ga - gb).norm() <= 1e-4 * ga.norm()  # fp32 reassociation across kernels


def test_fused_norm_under_regional_compile(monkeypatch):
    """model.diffusion_args={norm: fused} together with run.compile=blocks: the fused op runs between the compiled
    graphs of each ResBlock (compiler-disabled), and loss and gradients stay those of the plain step."""
    monkeypatch.setenv("DAA_COMPILE_BACKEND", os.environ.get("DAA_COMPILE_BACKEND", "aot_eager"))
    a, _, batch, draws = _pair(channels_last=False, compile_mode="none")
    torch.manual_seed(0)
    b = DAAObjective(build_restorer("unet", "tiny"), build_diffusion_unet("tiny", dropout=0.0, norm="fused"),
                     ObjectiveConfig(mode="daa", kernels="torch"))
    b.load_state_dict(a.state_dict())
    b = apply_levers(b, compile_mode="blocks")
    la, ga = _loss_and_grads(a, batch, draws)
    lb, gb = _loss_and_grads(b, batch, draws)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-6)
    assert (ga - gb).norm() <= 1e-4 * ga.norm()


def test_lever_config_values_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("DAA_NO_TQDM", "1")
    with pytest.raises(ConfigError, match="run.compile must be"):
        load_config("demo", ["run.compile=yes"])
    with pytest.raises(ConfigError, match="data.pin_memory"):
        load_config("demo", ["data.pin_memory=maybe"])
    from daa.training.trainer import Trainer
    from data_shards.synthetic import SyntheticStream

    base = ["model.restorer_args={depth: 2, wf: 16}", "data.patch_size=16", "run.tensorboard=false",
            "run.global_batch=4", "run.micro_batch=4", "data.val=", f"run.run_dir={tmp_path}",
            "run.log_every_images=4", "run.ckpt_every_images=4", "run.eval_every_images=100"]
    t = Trainer(load_config("demo", base + ["run.total_images=4"]), stream=SyntheticStream(4, 16), valset=None)
    t.fit()
    t.close()
    # the same run resumed with the levers on: they are resumable (no "different config"), and it trains on
    t = Trainer(load_config("demo", base + ["run.total_images=8", "run.channels_last=true", "run.cudnn_benchmark=true",
                                            "data.pin_memory=false"]), stream=SyntheticStream(4, 16), valset=None)
    assert t.images_seen == 4
    t.fit()
    assert t.images_seen == 8
    batch = t._to_device(next(iter(SyntheticStream(4, 16))))
    assert all(v.is_contiguous(memory_format=torch.channels_last) for v in batch.values())
    t.close()
