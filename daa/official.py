"""The official training step's op sequence, written out as the official code runs it (spec §2.3,
models/network.py): two restorer calls, clone + masked in-place swaps, two diffusion calls, batch-level triplet on
MSEs, (MSE + triplet)/2. Used as the oracle in tests and as the baseline in `launch/bench_step.py`; training uses
`daa.objective.DAAObjective`, which computes the same loss with batched calls.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def official_step_loss(restorer, denoiser, batch: dict, draws, alpha: float, mode: str = "daa",
                       margin: float = 0.1, eps: float = 1e-3, terms: dict | None = None) -> torch.Tensor:
    """The official step's loss (see the module docstring); `terms`, when a dict, receives the logged loss terms
    (l_pix, mse_pos, triplet) as tensors, as the official training loop logs them."""
    x_s, y_s = batch["x_s"], batch["y_s"]
    r_s = restorer(x_s)
    out_s = x_s + r_s
    l_pix = torch.sqrt((y_s - out_s) ** 2 + eps * eps).mean()
    if mode == "baseline":
        return l_pix
    x_r = batch["x_r"]
    r_r = restorer(x_r)
    out_r = x_r + r_r
    y0 = batch["y_ref"] if mode == "daa_ref" else y_s
    g = draws.gammas.view(-1, 1, 1, 1)  # float32, as the official γ tensor
    noisy = g.sqrt() * y0 + (1 - g).sqrt() * draws.noise
    c1, c2 = out_s.clone(), out_r.clone()
    m = draws.swap_pos
    c1[m], c2[m] = out_r[m], out_s[m]
    eps_pos = denoiser(torch.cat([noisy, c1, c2], 1), draws.gammas)
    mse_pos = F.mse_loss(draws.noise, eps_pos)
    if mode == "daa_ref":
        return l_pix + alpha * mse_pos
    n_s, n_r = x_s + r_r, x_r + r_s
    d1, d2 = n_s.clone(), n_r.clone()
    m2 = draws.swap_neg
    d1[m2], d2[m2] = n_r[m2], n_s[m2]
    eps_neg = denoiser(torch.cat([noisy, d1, d2], 1), draws.gammas)
    trip = F.relu(F.mse_loss(draws.noise, eps_pos) - F.mse_loss(draws.noise, eps_neg) + margin)
    if terms is not None:
        terms.update(l_pix=l_pix, mse_pos=mse_pos, triplet=trip)
    return l_pix + alpha * (mse_pos + trip) / 2
