"""Networks: exact parameter counts, odd sizes, input errors, attention math, init switches."""
import pytest
import torch

from daa.models import build_diffusion_unet, build_restorer, count_parameters, restorer_names
from daa.models.diffusion_unet import AttentionBlock, gamma_embedding


def test_restorer_unet_parameter_count_is_the_papers():
    assert count_parameters(build_restorer("unet")) == 8_559_171


def test_diffusion_unet_default_matches_official():
    net = build_diffusion_unet()
    assert count_parameters(net) == 62_643_075  # exact, not just within 1 %
    attn = [n for n, m in net.named_modules() if isinstance(m, AttentionBlock)]
    assert attn == ["middle_block.1"]  # official attn_res=[16] never fires with 4 levels
    assert net.middle_block[1].num_heads == 16


def test_diffusion_unet_attn_res_adds_attention_where_asked():
    net = build_diffusion_unet("tiny", attn_res=(2,))
    names = [n for n, m in net.named_modules() if isinstance(m, AttentionBlock)]
    assert len(names) > 1 and "middle_block.1" in names


def test_registry_lists_all_restorers():
    assert restorer_names() == ["dncnn", "mini", "nafnet", "restormer", "unet"]


@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 3, 8, 8), (1, 3, 5, 130)])
def test_unet_any_size_returns_same_shape(shape):
    net = build_restorer("unet", preset="tiny")
    x = torch.rand(shape)
    r = net(x)
    assert r.shape == x.shape and torch.isfinite(r).all()
    torch.testing.assert_close(net.restore(x), x + r)


def test_unet_padding_is_crop_consistent():
    """An odd-size input gives the crop of the residual of its replicate-padded version."""
    net = build_restorer("unet", preset="tiny")
    x = torch.rand(1, 3, 13, 10)
    xp = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="replicate")  # tiny net: multiple of 4
    torch.testing.assert_close(net(x), net(xp)[..., :13, :10])


def test_diffusion_unet_odd_size_and_grad():
    net = build_diffusion_unet("tiny")
    x = torch.randn(3, 9, 17, 23, requires_grad=True)
    out = net(x, torch.rand(3))
    assert out.shape == (3, 3, 17, 23)
    out.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown restorer 'unet2'; available: dncnn, mini, nafnet, restormer, unet"):
        build_restorer("unet2")
    with pytest.raises(ValueError, match="expects 3 input channels, got 4"):
        build_restorer("unet", preset="tiny")(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        build_restorer("unet", preset="tiny")(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="no option 'width'"):
        build_restorer("unet", width=3)
    with pytest.raises(ValueError, match="no preset 'huge'"):
        build_restorer("unet", preset="huge")
    with pytest.raises(ValueError, match="expects 9 input channels, got 6"):
        build_diffusion_unet("tiny")(torch.rand(1, 6, 8, 8), torch.rand(1))
    with pytest.raises(ValueError, match="one noise level per sample"):
        build_diffusion_unet("tiny")(torch.rand(2, 9, 8, 8), torch.rand(3))
    with pytest.raises(ValueError, match="GroupNorm"):
        build_diffusion_unet(inner_channel=48)
    with pytest.raises(ValueError, match="attention must be"):
        build_diffusion_unet("tiny", attention="flash")


def test_xformers_request_on_cpu_is_a_clear_error():
    net = build_diffusion_unet("tiny", attention="xformers")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        net(torch.rand(1, 9, 8, 8), torch.rand(1))


def test_sdpa_attention_equals_legacy_einsum():
    """The official QKVAttentionLegacy math: per head [q,k,v] channel layout, scale 1/√√ch on q and k."""
    torch.manual_seed(0)
    blk = AttentionBlock(64, num_head_channels=32)
    x = torch.randn(2, 64, 4, 5)
    b, c, t, heads = 2, 64, 20, 2
    xf = x.reshape(b, c, t)
    qkv = blk.qkv(blk.norm(xf))
    ch = c // heads
    q, k, v = qkv.reshape(b * heads, ch * 3, t).split(ch, dim=1)
    scale = 1 / ch**0.25
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale).softmax(-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, t)
    want = (xf + blk.proj_out(a)).reshape(b, c, 4, 5)
    torch.testing.assert_close(blk(x), want, rtol=1e-5, atol=1e-5)


def test_init_switch():
    official = build_diffusion_unet("tiny")  # kaiming everywhere, like the official init_weights
    assert official.out[-1].weight.std() > 0.01
    guided = build_diffusion_unet("tiny", init="guided")
    assert guided.out[-1].weight.abs().max() == 0
    assert guided.middle_block[1].proj_out.weight.abs().max() == 0
    r = build_restorer("unet", preset="tiny")
    assert r.last.bias.abs().max() == 0  # kaiming init zeroes biases; torch's default does not
    assert build_restorer("unet", preset="tiny", init="torch").last.bias.abs().max() > 0


def test_gamma_embedding_uses_raw_alpha_bar():
    g = torch.tensor([0.5])
    e = gamma_embedding(g, 64)
    assert e.shape == (1, 64)
    torch.testing.assert_close(e[0, 0], torch.cos(torch.tensor(0.5)))  # f_0 = 1: no ×1000 scaling
    torch.testing.assert_close(e[0, 32], torch.sin(torch.tensor(0.5)))


def test_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = build_diffusion_unet("tiny")
    b = build_diffusion_unet("tiny", use_checkpoint=True)
    b.load_state_dict(a.state_dict())
    x, g = torch.randn(2, 9, 8, 8), torch.rand(2)
    a(x, g).sum().backward()
    b(x, g).sum().backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("option", [{"silu": "official"}, {"norm": "native"}, {"norm": "fused"}])
def test_diffusion_layer_options_are_the_same_function(option):
    """silu='official' (x·sigmoid(x)), norm='native' (GroupNorm in the input dtype) and norm='fused' (GroupNorm +
    scale/shift + SiLU as one op; its eager reference on CPU) change kernels, not maths:
    same parameters, the same output and gradients in fp32; in bf16 no less accurate than the fp32-norm path."""
    torch.manual_seed(0)
    a = build_diffusion_unet("tiny")
    b = build_diffusion_unet("tiny", **option)
    b.load_state_dict(a.state_dict())
    x, g = torch.randn(2, 9, 16, 16, requires_grad=True), torch.rand(2)
    ya, yb = a(x, g), b(x, g)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    ga = torch.autograd.grad(ya.square().sum(), list(a.parameters()))
    gb = torch.autograd.grad(yb.square().sum(), list(b.parameters()))
    # fp32 rounding of a different formula, relative to the whole gradient (a conv bias before a GroupNorm has a
    # gradient that is zero up to rounding, so per-tensor ratios are meaningless there)
    u, v = torch.cat([t.flatten() for t in ga]), torch.cat([t.flatten() for t in gb])
    assert (u - v).norm() <= 1e-5 * u.norm()
    if "norm" in option:
        a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
        xb, ref = x.detach().to(torch.bfloat16), ya.detach()
        with torch.no_grad():  # relative error of each bf16 model against the fp32 output
            e_a, e_b = (((m(xb, g).float() - ref).norm() / ref.norm()).item() for m in (a16, b16))
        assert e_a < 0.05  # bf16 rounding only
        assert e_b <= 1.1 * e_a  # no less accurate than guided-diffusion's fp32 round trip
    with pytest.raises(ValueError, match="must be one of"):
        build_diffusion_unet("tiny", **{k: "nope" for k in option})


def test_fused_norm_runs_the_triton_kernel_in_the_unet(monkeypatch):
    """norm='fused' through the Triton kernel itself (the interpreter on CPU, DAA_KERNELS=triton): the U-Net's output
    and every gradient (input and parameters) match the fp32 GroupNorm path."""
    import kernels.group_norm_silu as gns

    torch.manual_seed(0)
    a = build_diffusion_unet("tiny", dropout=0.0)
    b = build_diffusion_unet("tiny", dropout=0.0, norm="fused")
    b.load_state_dict(a.state_dict())
    calls = []
    real = gns.GroupNormSiLUFunction.apply
    monkeypatch.setattr(gns.GroupNormSiLUFunction, "apply", lambda *args: calls.append(1) or real(*args))
    monkeypatch.setenv("DAA_KERNELS", "triton")
    g = torch.rand(1)  # one sample: the interpreter's cost is per program, one per (sample, group)
    # channels_last: NHWC through every block, the strided path (NCHW: tests/test_kernel_group_norm_silu.py)
    x = torch.randn(1, 9, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ya, yb = a(x, g), b(x, g)
    torch.testing.assert_close(yb, ya, rtol=1e-4, atol=1e-4)
    ga = torch.autograd.grad(ya.square().sum(), [x, *a.parameters()])
    gb = torch.autograd.grad(yb.square().sum(), [x, *b.parameters()])
    u, v = torch.cat([t.flatten() for t in ga]), torch.cat([t.flatten() for t in gb])
    assert (u - v).norm() <= 1e-4 * u.norm()
    n_norms = sum(isinstance(m, torch.nn.GroupNorm) for m in b.modules())
    n_attn = sum(type(m).__name__ == "AttentionBlock" for m in b.modules())
    assert len(calls) == n_norms - n_attn  # every GroupNorm but the attention blocks' ran the kernel
