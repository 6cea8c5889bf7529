"""DnCNN / NAFNet / Restormer: reference sizes, odd-shape forwards, gradient flow, the residual contract, errors."""
from __future__ import annotations

import pytest
import torch

from daa.models.base import count_parameters
from daa.models.registry import build_restorer

NAMES = ["dncnn", "nafnet", "restormer"]
DEFAULT_PARAMS = {"dncnn": 558_336, "nafnet": 29_159_715, "restormer": 26_111_668}
# tiny presets: the layer whose zeroing must zero the output if the network returns only the residual
# (dncnn tiny: conv, relu, 3 × [conv, bn, relu], conv → index 11)
LAST_LAYER = {"dncnn": "dncnn.11", "nafnet": "ending", "restormer": "output"}
OFFICIAL_KEYS = {
    "dncnn": ["dncnn.0.weight", "dncnn.3.running_mean", "dncnn.47.weight"],  # 47 = 2 + 15 × 3: the last conv
    "nafnet": ["intro.weight", "encoders.0.0.beta", "middle_blks.0.sca.1.weight", "ups.0.0.weight",
               "decoders.1.0.norm2.bias", "downs.1.bias", "ending.bias"],
    "restormer": ["patch_embed.proj.weight", "encoder_level1.0.norm1.body.weight", "encoder_level1.0.attn.temperature",
                  "latent.0.attn.qkv_dwconv.weight", "latent.0.ffn.project_in.weight", "down1_2.body.0.weight",
                  "up4_3.body.0.weight", "reduce_chan_level3.weight", "refinement.0.ffn.dwconv.weight",
                  "output.weight"],
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", NAMES)
def test_default_parameter_count(name):
    assert count_parameters(build_restorer(name)) == DEFAULT_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_official_parameter_names(name):
    keys = build_restorer(name).state_dict().keys()
    missing = [k for k in OFFICIAL_KEYS[name] if k not in keys]
    assert not missing


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 3, 33, 40)])
def test_tiny_forward_odd_shapes(name, shape):
    net = build_restorer(name, "tiny")
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert y.shape == shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    net = build_restorer(name, "tiny")
    if name == "nafnet":
        # β, γ start at zero so every block is the identity and its inner convs get zero gradients; check that
        # first, then make the blocks active so the inner weights must receive signal too.
        zero_init = [p for n, p in net.named_parameters() if n.endswith((".beta", ".gamma"))]
        assert zero_init and all((p == 0).all() for p in zero_init)
        net(torch.rand(1, 3, 16, 16)).square().mean().backward()
        assert all(p.grad is not None for p in net.parameters())
        net.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p in zero_init:
                p.fill_(0.5)
    net(torch.rand(2, 3, 17, 23)).square().mean().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in net.named_parameters() if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not no_grad
    assert not zero


@pytest.mark.parametrize("name", NAMES)
def test_output_is_residual_only(name):
    net = build_restorer(name, "tiny").eval()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        r = net(x)
        torch.testing.assert_close(net.restore(x), x + r)
        for p in net.get_submodule(LAST_LAYER[name]).parameters():
            p.zero_()
        # a zero last layer gives a zero output only if the input is not added back inside the network
        assert net(x).abs().max() == 0


@pytest.mark.parametrize("name", NAMES)
def test_wrong_channel_count(name):
    net = build_restorer(name, "tiny")
    with pytest.raises(ValueError, match="input channels"):
        net(torch.rand(1, 4, 16, 16))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_override(name):
    with pytest.raises(ValueError, match="widht"):
        build_restorer(name, "tiny", widht=3)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("dncnn", dict(num_of_layers=1)),
        ("nafnet", dict(enc_blk_nums=(1, 1), dec_blk_nums=(1,))),
        ("nafnet", dict(width=0)),
        ("restormer", dict(dim=6, heads=(4, 1, 1, 1))),
        ("restormer", dict(dim=7)),
        ("restormer", dict(layernorm_type="Foo")),
    ],
)
def test_bad_config(name, overrides):
    with pytest.raises(ValueError, match=name):
        build_restorer(name, "tiny", **overrides)


def test_restormer_withbias_and_dual_pixel():
    net = build_restorer("restormer", "tiny", in_channels=6, layernorm_type="WithBias", bias=True, dual_pixel_task=True)
    with torch.no_grad():
        y = net(torch.rand(1, 6, 9, 10))
    assert y.shape == (1, 3, 9, 10) and torch.isfinite(y).all()
    assert "skip_conv.weight" in net.state_dict() and "latent.0.norm1.body.bias" in net.state_dict()


@pytest.mark.parametrize("name", ["unet", "mini", *NAMES])
def test_identity_init_starts_as_the_identity_and_still_learns(name):
    net = build_restorer(name, "tiny", init="identity")
    x = torch.rand(2, 3, 17, 23)
    assert net(x).abs().max() == 0  # x + R(x) = x at step 0
    layer = net.output_layer()
    if name in LAST_LAYER:
        assert layer is net.get_submodule(LAST_LAYER[name])
    assert layer.weight.abs().sum() == 0
    # the rest keeps the official kaiming init, so the zeroed layer gets a gradient and training can start
    ref = build_restorer(name, "tiny", init="kaiming")
    others = [(n, p) for n, p in net.named_parameters() if not n.startswith(_name_of(net, layer))]
    assert any(p.abs().sum() > 0 for _, p in others)
    (x + net(x) - torch.rand_like(x)).square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert count_parameters(net) == count_parameters(ref)
    with pytest.raises(ValueError, match="restorer init must be one of"):
        build_restorer(name, "tiny", init="zeros")


def _name_of(root: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(n for n, m in root.named_modules() if m is module)


def test_registering_a_taken_name_is_refused():
    from daa.models.registry import register_restorer, restorer_names

    assert "unet" in restorer_names()  # the built-in restorers are registered (lazily, on first use)
    with pytest.raises(ValueError, match="'unet' is already registered by daa.models.unet.UNetRestorer"):
        @register_restorer("unet", dict)
        class Other(torch.nn.Module):
            pass
    assert "unet" in restorer_names() and type(build_restorer("unet", "tiny")).__name__ == "UNetRestorer"
