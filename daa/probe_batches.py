"""The crops and diffusion draws that daa.diagnose (gradient table) and daa.condition_preference (loss table) both
read, and the smoothing direction both measure against. Shared here so the two diagnostics see the same batches
under the same seed without importing each other."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .objective import DAAObjective, StepDraws

SMOOTH_SIGMA = 1.5
"""Gaussian σ (px) of the smoothing direction; the same scale as the detail measurement of the DAA-mini report."""


def smoothing_direction(y: torch.Tensor, sigma: float = SMOOTH_SIGMA) -> torch.Tensor:
    """blur(y) − y for (N,C,H,W) images (separable Gaussian, reflect padding): the step that makes y smoother."""
    r = int(math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=y.dtype, device=y.device)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = y.shape[1]
    b = F.pad(y, (r, r, r, r), mode="reflect")
    b = F.conv2d(b, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    b = F.conv2d(b, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return b - y


def quartile_draws(obj: DAAObjective, batch: int, shape, quartile: int, gen: torch.Generator) -> StepDraws:
    """Draws as in training, with t uniform in the quartile `quartile` (0..3) of [t_min, t_max]."""
    s = obj.schedule
    lo, hi = s.cfg.t_min, s.t_max
    edges = [lo + round(k * (hi - lo + 1) / 4) for k in range(5)]
    t = torch.randint(edges[quartile], max(edges[quartile + 1], edges[quartile] + 1), (batch,), generator=gen)
    g_lo, g_hi = s.gammas[t], s.gammas[t - 1]
    u = torch.rand(batch, generator=gen, dtype=torch.float64)
    gam = (g_lo + (g_hi - g_lo) * u if s.cfg.continuous else g_lo).float()
    base = obj.draw(batch, shape, "cpu", gen, noise_generator=gen)
    return StepDraws(gam, base.swap_pos, base.swap_neg, base.noise, t)


def quartile_edges(obj: DAAObjective) -> list[tuple[int, int]]:
    lo, hi = obj.schedule.cfg.t_min, obj.schedule.t_max
    e = [lo + round(k * (hi - lo + 1) / 4) for k in range(5)]
    return [(e[k], e[k + 1] - 1) for k in range(4)]


def quartile_batches(obj: DAAObjective, pairs: dict[str, torch.Tensor], batches: int, batch: int, seed: int = 0):
    """Per t-quartile: (its label, `batches` batches as probe_batch arguments: x_s, y_s, x_r, y_r, draws, y_ref),
    drawn from `pairs` (x_s, y_s, x_r, y_r crops, (N,3,P,P) in the networks' range; row i of the real and the
    synthetic sets are different images). The same seed gives the same crops and draws to every table."""
    gen = torch.Generator().manual_seed(seed)
    n = len(pairs["x_r"])
    for q, (a, b) in enumerate(quartile_edges(obj)):
        out = []
        for _ in range(batches):
            i = torch.randint(0, n, (batch,), generator=gen)
            j = torch.randint(0, len(pairs["x_s"]), (batch,), generator=gen)
            d = quartile_draws(obj, batch, pairs["x_r"].shape[1:], q, gen)
            out.append((pairs["x_s"][j], pairs["y_s"][j], pairs["x_r"][i], pairs["y_r"][i], d,
                        pairs["y_s"][j.roll(1)] if obj.cfg.mode == "daa_ref" else None))
        yield f"t {a}-{b}", out


