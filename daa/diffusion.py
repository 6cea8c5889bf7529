"""Noise schedule, continuous ᾱ sampling and q_sample (spec §2.2, §4).

β_t = linspace(1e-6, 1e-2, 1000); ᾱ = cumprod(1 − β) indexed 0..T−1. Per sample: t ~ U{t_min..t_max} (official
1..T−1) and ᾱ ~ U[ᾱ_t, ᾱ_{t−1}] (WaveGrad/Palette continuous noise level); the denoiser is conditioned on that ᾱ.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

_SCHEDULES = ("linear", "cosine")


@dataclass
class ScheduleConfig:
    schedule: str = "linear"
    """'linear' (official: β from linear_start to linear_end) or 'cosine' (Nichol & Dhariwal)."""
    n_timestep: int = 1000
    linear_start: float = 1e-6
    linear_end: float = 1e-2
    t_min: int = 1
    """Smallest t drawn (official 1; Table 4 ablates [1,100], [900,1000])."""
    t_max: int | None = None
    """Largest t drawn, inclusive; None = n_timestep − 1 (official: randint(1, T) excludes T)."""
    continuous: bool = True
    """True: ᾱ ~ U[ᾱ_t, ᾱ_{t−1}] (official). False: ᾱ = ᾱ_t exactly (discrete DDPM levels)."""

    def __post_init__(self):
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(_SCHEDULES)}, got {self.schedule!r}")
        if self.n_timestep < 2:
            raise ValueError(f"n_timestep must be >= 2, got {self.n_timestep}")
        t_max = self.n_timestep - 1 if self.t_max is None else self.t_max
        if not 1 <= self.t_min <= t_max <= self.n_timestep - 1:
            raise ValueError(f"need 1 <= t_min <= t_max <= n_timestep-1 ({self.n_timestep - 1}), "
                             f"got t_min={self.t_min}, t_max={t_max}")
        if not 0.0 < self.linear_start <= self.linear_end < 1.0:
            raise ValueError(f"need 0 < linear_start <= linear_end < 1, got {self.linear_start}, {self.linear_end}")


class NoiseSchedule:
    """Holds ᾱ (float64 on CPU, the table is tiny) and draws per-sample continuous noise levels."""

    def __init__(self, cfg: ScheduleConfig | None = None):
        self.cfg = cfg = cfg or ScheduleConfig()
        if cfg.schedule == "linear":
            betas = torch.linspace(cfg.linear_start, cfg.linear_end, cfg.n_timestep, dtype=torch.float64)
        else:
            s, steps = 0.008, torch.arange(cfg.n_timestep + 1, dtype=torch.float64) / cfg.n_timestep
            f = torch.cos((steps + s) / (1 + s) * torch.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.betas = betas
        self.gammas = torch.cumprod(1.0 - betas, 0)  # ᾱ_t, t = 0..T-1
        self.t_max = cfg.n_timestep - 1 if cfg.t_max is None else cfg.t_max

    def sample_t(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.cfg.t_min, self.t_max + 1, (n,), generator=generator)

    def sample_gammas(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (t, ᾱ) for n samples; ᾱ float32 on `device`, drawn on CPU from `generator` (device-independent)."""
        t = self.sample_t(n, generator)
        lo, hi = self.gammas[t], self.gammas[t - 1]  # ᾱ_t < ᾱ_{t-1}
        if self.cfg.continuous:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            g = lo + (hi - lo) * u
        else:
            g = lo
        return t, g.to(device=device, dtype=torch.float32)


def q_sample(y0: torch.Tensor, gammas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """ỹ = √ᾱ·y0 + √(1−ᾱ)·ε, with one ᾱ per sample."""
    g = gammas.reshape(-1, *([1] * (y0.dim() - 1))).to(torch.float32)
    return (g.sqrt() * y0 + (1 - g).sqrt() * noise).to(y0.dtype)
