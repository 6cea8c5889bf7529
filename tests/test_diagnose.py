"""daa.diagnose on constructed cases whose answer is known.

A stub ε_θ predicts ε from the noisy target ỹ = √γ·y + √(1−γ)·ε as if y were the real-output slot c shifted by
(y − z): its MSE is then ∝ ‖z − c‖², so α·L_noise pulls ŷ_r toward the fixed point z. z = the clean image: cosine +1,
and its parameter gradient is the oracle's (Charbonnier with a large ε is quadratic); z = the reflection of ŷ_r
about y: cosine −1; a stub that ignores its conditions: no signal."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from daa.diagnose import probe_batch, run_probes
from daa.models import build_restorer
from daa.objective import DAAObjective, ObjectiveConfig, StepDraws
from daa.probe_batches import smoothing_direction


class PullDenoiser(nn.Module):
    """ε̂ = (ỹ − √γ·(y + c − z))/√(1−γ), c = the real-output slot (channels 6-8): ε̂ − ε = √γ(z − c)/√(1−γ).
    z=None: ε̂ = ỹ, independent of the conditions."""

    def __init__(self, y: torch.Tensor, z: torch.Tensor | None):
        super().__init__()
        self.register_buffer("y", y)
        self.register_buffer("z", z if z is not None else torch.zeros(0))
        self.unused = nn.Parameter(torch.zeros(1))  # an optimizer-visible parameter, as a real ε_θ has

    def forward(self, cond, gammas):
        g = gammas.reshape(-1, 1, 1, 1)
        y_t, c = cond[:, :3], cond[:, 6:9]
        if self.z.numel() == 0:
            return y_t + 0 * self.unused
        return (y_t - g.sqrt() * (self.y + c - self.z)) / (1 - g).sqrt() + 0 * self.unused


def _setup(pull: str):
    torch.manual_seed(0)
    r = build_restorer("unet", "tiny")
    # no shuffle and no negatives: the real output always sits in slot B (channels 6-8); Charbonnier with a large ε
    # is quadratic, so the oracle's gradient is ∝ (ŷ_r − y_r) like the stub's noise loss
    ocfg = ObjectiveConfig(mode="daa", channel_shuffle=False, residual_swap=False, charbonnier_eps=10.0)
    b, shape = 4, (3, 16, 16)
    y_s, y_r = torch.rand(b, *shape), torch.rand(b, *shape)
    x_s = y_s + 0.1 * torch.randn(b, *shape)
    x_r = y_r + 0.2 * torch.randn(b, *shape)
    with torch.no_grad():
        y_hat_r = x_r + r(x_r)
    z = {"clean": y_r, "away": 2 * y_hat_r - y_r, "none": None,
         "smooth": y_hat_r + smoothing_direction(y_hat_r)}[pull]
    obj = DAAObjective(r, PullDenoiser(y_s, z), ocfg)
    draws = StepDraws(gammas=torch.full((b,), 0.5), swap_pos=torch.zeros(b, dtype=torch.bool), swap_neg=None,
                      noise=torch.randn(b, *shape))
    return obj, x_s, y_s, x_r, y_r, draws


def test_stub_that_pulls_toward_clean():
    obj, x_s, y_s, x_r, y_r, d = _setup("clean")
    p = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=0.7, draws=d)
    assert p.cos_real == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(p.cos_syn)  # the synthetic slot is not read: no gradient on ŷ_s
    assert p.cos_oracle == pytest.approx(1.0, abs=1e-4)  # same per-sample weights → the oracle's direction
    assert p.rms_ratio > 0 and p.norm_ratio > 0
    # α scales the noise gradient only
    p2 = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=1.4, draws=d)
    assert p2.rms_ratio == pytest.approx(2 * p.rms_ratio, rel=1e-5)


def test_stub_that_pulls_toward_a_blurred_output():
    obj, x_s, y_s, x_r, y_r, d = _setup("smooth")
    p = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=1.0, draws=d)
    assert p.cos_smooth == pytest.approx(1.0, abs=1e-5)
    assert abs(p.cos_truth_smooth) < 0.5  # random clean images: the truth is not the blurred output


def test_smoothing_cosines_agree_when_pulled_to_the_truth():
    obj, x_s, y_s, x_r, y_r, d = _setup("clean")
    p = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=1.0, draws=d)
    assert p.cos_smooth == pytest.approx(p.cos_truth_smooth, abs=1e-5)


def test_smoothing_direction():
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert smoothing_direction(flat).abs().max() < 1e-6  # nothing to smooth
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 1.0
    y = (0.5 + 0.2 * (checker - 0.5)).expand(1, 3, 16, 16)
    s = smoothing_direction(y)
    # the finest pattern there is: blurring removes almost all of it, so the step is ≈ −(y − mean)
    cos = torch.nn.functional.cosine_similarity(s.flatten(), -(y - 0.5).flatten(), dim=0)
    assert cos > 0.99
    assert smoothing_direction(2 * y).sub(2 * s).abs().max() < 1e-5  # linear


def test_stub_that_pushes_away():
    obj, x_s, y_s, x_r, y_r, d = _setup("away")
    p = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=1.0, draws=d)
    assert p.cos_real == pytest.approx(-1.0, abs=1e-5)
    assert p.cos_oracle == pytest.approx(-1.0, abs=1e-4)
    assert p.delta_cos_total < 0


def test_stub_that_ignores_conditions_gives_no_signal():
    obj, x_s, y_s, x_r, y_r, d = _setup("none")
    p = probe_batch(obj, x_s, y_s, x_r, y_r, alpha=1.0, draws=d)
    assert p.rms_ratio == 0.0 and p.norm_ratio == 0.0
    assert math.isnan(p.cos_real)


def test_run_probes_covers_the_t_quartiles():
    obj, x_s, y_s, x_r, y_r, _ = _setup("none")
    res = run_probes(obj, dict(x_s=x_s, y_s=y_s, x_r=x_r, y_r=y_r), alpha=1.0, batches=1, batch=4)
    keys = list(res)
    assert len(keys) == 5 and keys[-1] == "all"
    bounds = [tuple(map(int, k[2:].split("-"))) for k in keys[:4]]
    assert bounds[0][0] == 1 and bounds[-1][1] == 999
    assert all(b[0] == a[1] + 1 for a, b in zip(bounds, bounds[1:]))  # contiguous quartiles of t
    assert all(p.rms_ratio == 0.0 for p in res.values())


def test_baseline_objective_is_refused():
    obj = DAAObjective(build_restorer("unet", "tiny"), None, ObjectiveConfig(mode="baseline"))
    x = torch.rand(2, 3, 16, 16)
    d = StepDraws(torch.full((2,), 0.5), torch.zeros(2, dtype=torch.bool), None, torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="diffusion model"):
        probe_batch(obj, x, x, x, x, 1.0, d)
