"""The DAA objective: batched implementation == the official sequential op sequence; gradient routing; α ramp;
tiny models overfit a handful of patches."""
import math

import pytest
import torch
import torch.nn.functional as F

from daa.models import build_diffusion_unet, build_restorer
from daa.objective import DAAObjective, ObjectiveConfig, alpha_at, alpha_ramp, charbonnier
from daa.official import official_step_loss

B, H, W = 3, 16, 24


def _batch(dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.rand(B, 3, H, W, generator=g, dtype=dtype)  # noqa: E731
    y_s = r()
    return {"x_s": y_s + 0.1 * torch.randn(B, 3, H, W, generator=g, dtype=dtype), "y_s": y_s, "x_r": r(), "y_ref": r()}


def _objective(mode, restorer="unet", dtype=torch.float64, **cfg):
    torch.manual_seed(0)
    rest = build_restorer(restorer, preset="tiny").to(dtype)
    den = build_diffusion_unet("tiny", dropout=0.0).to(dtype) if mode != "baseline" else None
    return DAAObjective(rest, den, ObjectiveConfig(mode=mode, kernels="torch", **cfg))


def official_sequential_loss(obj: DAAObjective, batch, draws, alpha):
    """The official op sequence (daa/official.py) with this objective's networks and settings."""
    return official_step_loss(obj.restorer, obj.denoiser, batch, draws, alpha, obj.cfg.mode, obj.cfg.triplet_margin)


def _grads(module):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in module.named_parameters()}


@pytest.mark.parametrize("mode", ["baseline", "daa", "daa_ref"])
@pytest.mark.parametrize("margin", [0.1, 10.0])  # 10: the triplet hinge is active, so its gradient is compared too
def test_batched_equals_official_sequence(mode, margin):
    obj = _objective(mode, triplet_margin=margin)
    batch = _batch()
    draws = obj.draw(B, (3, H, W), "cpu", torch.Generator().manual_seed(3), torch.Generator().manual_seed(4),
                     dtype=torch.float64)
    draws.swap_pos = torch.tensor([True, False, True])  # mixed masks so both branches of the swap are exercised
    if draws.swap_neg is not None:
        draws.swap_neg = torch.tensor([False, True, True])
    alpha = 0.17

    out = obj(batch, alpha, draws)
    out["loss"].backward()
    got = _grads(obj)
    obj.zero_grad(set_to_none=True)
    ref = official_sequential_loss(obj, batch, draws, alpha)
    ref.backward()
    want = _grads(obj)
    torch.testing.assert_close(out["loss"], ref, rtol=1e-10, atol=1e-12)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-8, atol=1e-10, msg=f"grad of {name}")
    if mode != "baseline":
        assert any(g.abs().sum() > 0 for n, g in got.items() if n.startswith("denoiser."))
    if mode == "daa" and margin == 10.0:
        assert float(out["triplet"]) > 0  # hinge active: its gradient path was part of the comparison


def test_batchnorm_restorer_uses_separate_calls_and_matches_official():
    obj = _objective("daa", restorer="dncnn")
    assert not obj.joint_restorer
    batch = _batch()
    draws = obj.draw(B, (3, H, W), "cpu", torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(obj(batch, 0.2, draws)["loss"], official_sequential_loss(obj, batch, draws, 0.2))


def test_noise_loss_reaches_restorer_including_negative_branch():
    obj = _objective("daa")
    batch = _batch()
    draws = obj.draw(B, (3, H, W), "cpu", torch.Generator().manual_seed(0), dtype=torch.float64)
    out = obj(batch, 0.2, draws)
    # (1) the negative branch alone reaches R: recompute mse_neg with grad and backprop it
    obj.zero_grad(set_to_none=True)
    r = obj.restorer(torch.cat([batch["x_s"], batch["x_r"]]))
    from kernels import build_conditions
    cond, _ = build_conditions(batch["y_s"], batch["x_s"], batch["x_r"], r[:B], r[B:], draws.gammas,
                               draws.swap_pos, draws.swap_neg, draws.noise, impl="torch")
    eps_neg = obj.denoiser(cond[B:], draws.gammas)
    F.mse_loss(eps_neg, draws.noise).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.restorer.parameters())
    # (2) with an active triplet, detaching negatives changes R's gradient (so the default lets them through)
    grads = {}
    for detach in (False, True):
        o = _objective("daa", triplet_margin=10.0, detach_negatives=detach)
        o(batch, 0.2, draws)["loss"].backward()
        grads[detach] = torch.cat([p.grad.flatten() for p in o.restorer.parameters()])
    assert (grads[False] - grads[True]).abs().max() > 1e-8
    assert torch.isfinite(out["loss"])


def test_denoiser_gets_gradient_only_through_alpha_noise_loss():
    obj = _objective("daa")
    batch = _batch()
    draws = obj.draw(B, (3, H, W), "cpu", torch.Generator().manual_seed(0), dtype=torch.float64)
    obj(batch, 0.0, draws)["loss"].backward()  # α = 0: only the pixel loss
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in obj.denoiser.parameters())
    assert any(p.grad.abs().max() > 0 for p in obj.restorer.parameters())
    obj.zero_grad(set_to_none=True)
    out = obj(batch, 0.5, draws)
    out["loss"].backward()
    g_half = [p.grad.clone() for p in obj.denoiser.parameters()]
    obj.zero_grad(set_to_none=True)
    obj(batch, 1.0, draws)["loss"].backward()
    for a, b in zip(g_half, obj.denoiser.parameters()):  # denoiser grad is exactly linear in α
        torch.testing.assert_close(2 * a, b.grad, rtol=1e-9, atol=1e-12)


def test_alpha_ramp_values():
    assert alpha_ramp(0, 0.2, 300) == 0.0
    assert alpha_ramp(1, 0.2, 300) == pytest.approx(0.00167, abs=1e-5)  # official epoch 1 of 300
    assert alpha_ramp(50, 0.2, 300) == pytest.approx(0.0788, abs=1e-4)
    assert alpha_ramp(150, 0.2, 300) == pytest.approx(0.170, abs=1e-3)
    top = 0.2 * (2 / (1 + math.exp(-5)) - 1)
    assert alpha_ramp(300, 0.2, 300) == pytest.approx(top) == pytest.approx(0.19732, abs=1e-5)
    assert alpha_ramp(10**9, 0.2, 300) == pytest.approx(top)  # saturates, never reaches 0.2


def test_alpha_cool_down_scales_the_ramp_down_to_zero():
    plain = ObjectiveConfig(alpha_max=3.0, alpha_ramp_images=300)
    cool = ObjectiveConfig(alpha_max=3.0, alpha_ramp_images=300, alpha_decay_start_images=200, alpha_decay_images=100)
    for seen in (0, 50, 150, 200):  # before the cool-down: the ramp itself
        assert alpha_at(seen, cool) == alpha_at(seen, plain) == alpha_ramp(seen, 3.0, 300)
    assert alpha_at(250, cool) == pytest.approx(0.5 * alpha_ramp(250, 3.0, 300))
    assert alpha_at(300, cool) == 0.0 and alpha_at(10**6, cool) == 0.0
    assert alpha_at(10**6, plain) == pytest.approx(3 * (2 / (1 + math.exp(-5)) - 1))
    assert alpha_at(300, cool, cooldown=False) == alpha_ramp(300, 3.0, 300) > 0  # the diagnostics' α
    with pytest.raises(ValueError, match="alpha_decay"):
        ObjectiveConfig(alpha_decay_images=-1)


def test_no_shuffle_means_fixed_slots_and_no_negatives_without_rs():
    obj = _objective("daa", channel_shuffle=False, residual_swap=False)
    d = obj.draw(64, (3, 4, 4), "cpu", torch.Generator().manual_seed(0))
    assert not d.swap_pos.any() and d.swap_neg is None
    out = obj(_batch(), 0.2)
    assert "triplet" not in out and out["noise"] == out["mse_pos"]


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="mode"):
        ObjectiveConfig(mode="ours")
    with pytest.raises(ValueError, match="needs a diffusion"):
        DAAObjective(build_restorer("unet", preset="tiny"), None, ObjectiveConfig(mode="daa"))
    obj = _objective("daa")
    b = _batch()
    with pytest.raises(KeyError, match="x_r"):
        obj({"x_s": b["x_s"], "y_s": b["y_s"]}, 0.1)
    with pytest.raises(ValueError, match="share one shape"):
        obj({**b, "x_r": b["x_r"][..., :8]}, 0.1)


def _overfit(mode, steps):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(4, 3, 24, 24, generator=g)
    y = F.avg_pool2d(F.interpolate(y, scale_factor=4, mode="bilinear"), 4)  # smooth-ish "images"
    batch = {"x_s": y + 0.1 * torch.randn(y.shape, generator=g), "y_s": y,
             "x_r": y.flip(-1) + 0.1 * torch.randn(y.shape, generator=g)}
    rest = build_restorer("unet", preset="tiny")
    den = build_diffusion_unet("tiny") if mode != "baseline" else None
    obj = DAAObjective(rest, den, ObjectiveConfig(mode=mode, kernels="torch"))
    opt = torch.optim.Adam(obj.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    hist = []
    for _ in range(steps):
        out = obj(batch, 0.2, generator=gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append({k: float(v.detach()) for k, v in out.items() if v.numel() == 1})
    return hist


def test_tiny_baseline_overfits():
    h = _overfit("baseline", 120)
    first, last = h[0]["pix"], sum(x["pix"] for x in h[-10:]) / 10
    assert last < first / 3, (first, last)


def test_tiny_daa_overfits_and_noise_loss_falls():
    h = _overfit("daa", 40)
    pix0, pix1 = h[0]["pix"], sum(x["pix"] for x in h[-10:]) / 10
    noise0 = sum(x["mse_pos"] for x in h[:10]) / 10
    noise1 = sum(x["mse_pos"] for x in h[-10:]) / 10
    assert pix1 < pix0 / 3, (pix0, pix1)
    assert noise1 < 0.7 * noise0, (noise0, noise1)


def test_charbonnier_matches_formula():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(charbonnier(a, b, 1e-3), torch.sqrt((a - b) ** 2 + 1e-6).mean())
