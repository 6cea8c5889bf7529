"""The DAA training objective, three modes (spec §2.3–2.4):

- `baseline`: L = Charbonnier(x_s + R(x_s), y_s). No diffusion model.
- `daa` (the paper's "Ours"): L = Charbonnier + α·L_noise, L_noise = (MSE(ε, ε̂⁺) + triplet(ε, ε̂⁺, ε̂⁻)) / 2, where
  ε̂⁺ is predicted under the conditions [ỹ_s, ŷ_s, ŷ_r] (slots swapped per sample, "channel shuffling") and ε̂⁻
  under residual-swapped negatives [ỹ_s, x_s+R(x_r), x_r+R(x_s)] (independent swap mask).
- `daa_ref` ("Ours-Ex"): ỹ is built from an unpaired clean reference y_ref; positives only; L_noise = MSE.

Efficiency: R runs once on the concatenated [x_s; x_r] batch (unless it has batch-dependent layers such as
BatchNorm, where one call per domain keeps the official statistics), the conditions come from one
`kernels.build_conditions` call (fused Triton on CUDA), and ε_θ runs once on the (2B, 9, H, W) [positive; negative]
batch. Nothing is detached by default (spec §10.4): the noise loss, negatives included, trains R.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernels import build_conditions

from .diffusion import NoiseSchedule, ScheduleConfig

MODES = ("baseline", "daa", "daa_ref")


@dataclass
class ObjectiveConfig:
    mode: str = "daa"
    """'baseline' | 'daa' | 'daa_ref' (see module docstring)."""
    charbonnier_eps: float = 1e-3
    """Charbonnier ε: mean √(d² + ε²)."""
    alpha_max: float = 0.2
    """diff_weight: the DANN-style ramp tends to 0.2·(2/(1+e⁻⁵)−1) ≈ 0.1973 at the end of the ramp."""
    alpha_ramp_images: int = 17_000_000
    """Images seen until the α ramp ends (p = 1). Official: 300 epochs ≈ 300 × 296 steps × 192 ≈ 17 M images on
    DFWB. Counting images (not epochs) makes α independent of dataset size and world size."""
    alpha_decay_start_images: int = 0
    alpha_decay_images: int = 0
    """α cool-down (off at 0): from alpha_decay_start_images on, the ramp's α is scaled by a factor falling linearly
    from 1 to 0 over alpha_decay_images, so the restorer ends on its source loss alone (not in the paper: a lever
    against the source-domain cost of the noise loss)."""
    channel_shuffle: bool = True
    """Per-sample p=0.5 swap of the two condition slots (Table 4 'CS')."""
    residual_swap: bool = True
    """Residual-swap negatives + triplet (Table 4 'RS'); off → L_noise = MSE(ε, ε̂⁺)."""
    triplet_margin: float = 0.1
    triplet_reduction: str = "batch"
    """'batch' (official: one hinge on the batch-mean MSEs) or 'sample' (hinge per sample, then mean)."""
    average_noise_terms: bool = True
    """Official L_noise = (MSE + triplet)/2; False → MSE + triplet."""
    detach_negatives: bool = False
    """Stop the negative branch's gradient into R (official: no detach)."""
    restorer_batching: str = "auto"
    """'joint' = one R call on [x_s; x_r]; 'separate' = two calls (official); 'auto' = separate only when R has
    BatchNorm (batch statistics would otherwise mix the two domains)."""
    kernels: str | None = None
    """Condition-builder implementation: None/'auto' (Triton on CUDA), 'triton', 'torch'."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"objective mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.triplet_reduction not in ("batch", "sample"):
            raise ValueError(f"triplet_reduction must be 'batch' or 'sample', got {self.triplet_reduction!r}")
        if self.restorer_batching not in ("auto", "joint", "separate"):
            raise ValueError(f"restorer_batching must be auto, joint or separate, got {self.restorer_batching!r}")
        if self.alpha_ramp_images <= 0 or self.charbonnier_eps <= 0 or self.alpha_max < 0:
            raise ValueError("need alpha_ramp_images > 0, charbonnier_eps > 0 and alpha_max >= 0")
        if self.alpha_decay_start_images < 0 or self.alpha_decay_images < 0:
            raise ValueError("need alpha_decay_start_images >= 0 and alpha_decay_images >= 0")

    @property
    def uses_negatives(self) -> bool:
        return self.mode == "daa" and self.residual_swap


def alpha_ramp(images_seen: float, alpha_max: float = 0.2, ramp_images: float = 17_000_000) -> float:
    """α = alpha_max·(2/(1+e^{−5p}) − 1), p = min(images_seen / ramp_images, 1) (DANN ramp over images seen)."""
    p = min(max(images_seen, 0) / ramp_images, 1.0)
    return alpha_max * (2.0 / (1.0 + math.exp(-5.0 * p)) - 1.0)


def alpha_at(images_seen: float, cfg: ObjectiveConfig, cooldown: bool = True) -> float:
    """The α of a training step after `images_seen` images: the DANN ramp, times the cool-down factor when one is
    configured. The one place α is computed: the trainer and the diagnostics call it. `cooldown=False` gives the
    ramp's α alone: what the noise loss weighs while it acts, which the diagnostics read at a cooled-down
    checkpoint."""
    alpha = alpha_ramp(images_seen, cfg.alpha_max, cfg.alpha_ramp_images)
    if cooldown and cfg.alpha_decay_images > 0:
        alpha *= min(max(1.0 - (images_seen - cfg.alpha_decay_start_images) / cfg.alpha_decay_images, 0.0), 1.0)
    return alpha


def _atleast_f32(x: torch.Tensor) -> torch.Tensor:
    """Losses are reduced in fp32 even when the networks run in bf16/fp16 (fp64 stays fp64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    d = _atleast_f32(pred) - _atleast_f32(target)
    return torch.sqrt(d * d + eps * eps).mean()


@dataclass
class StepDraws:
    """The random draws of one step: per-sample noise level, swap masks and the noise itself."""

    gammas: torch.Tensor  # (B,) float32
    swap_pos: torch.Tensor  # (B,) bool
    swap_neg: torch.Tensor | None  # (B,) bool, None without negatives
    noise: torch.Tensor  # (B, 3, H, W)
    t: torch.Tensor | None = None  # (B,) the integer steps the levels came from (for logging by quartile)


class DAAObjective(nn.Module):
    """Holds R and ε_θ (so one DeepSpeed engine / optimizer sees both) and computes the loss of one step."""

    def __init__(self, restorer: nn.Module, denoiser: nn.Module | None, cfg: ObjectiveConfig | None = None,
                 schedule: ScheduleConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ObjectiveConfig()
        if cfg.mode != "baseline" and denoiser is None:
            raise ValueError(f"objective mode {cfg.mode!r} needs a diffusion U-Net (denoiser is None)")
        self.restorer = restorer
        self.denoiser = denoiser if cfg.mode != "baseline" else None
        self.schedule = NoiseSchedule(schedule)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in restorer.modules())
        self.joint_restorer = cfg.restorer_batching == "joint" or (cfg.restorer_batching == "auto" and not has_bn)

    # ---- randomness ---------------------------------------------------------------------------------------------
    def draw(self, batch_size: int, image_shape, device, generator: torch.Generator | None = None,
             noise_generator: torch.Generator | None = None, dtype=torch.float32) -> StepDraws:
        """Draw ᾱ, masks (on CPU from `generator`) and ε (on `device` from `noise_generator`)."""
        t, gammas = self.schedule.sample_gammas(batch_size, generator, device)
        swap_pos = torch.rand(batch_size, generator=generator) > 0.5
        swap_neg = torch.rand(batch_size, generator=generator) > 0.5
        if not self.cfg.channel_shuffle:
            swap_pos, swap_neg = torch.zeros_like(swap_pos), torch.zeros_like(swap_neg)
        noise = torch.randn((batch_size, *image_shape), generator=noise_generator, device=device, dtype=dtype)
        return StepDraws(gammas, swap_pos.to(device), swap_neg.to(device) if self.cfg.uses_negatives else None,
                         noise, t)

    # ---- the loss -----------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], alpha: float, draws: StepDraws | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """batch: x_s, y_s (paired synthetic), x_r (unpaired real), y_ref (daa_ref). Returns named loss terms;
        'loss' is the total to backpropagate."""
        cfg = self.cfg
        x_s, y_s = _need(batch, "x_s"), _need(batch, "y_s")
        if cfg.mode == "baseline":
            y_hat = x_s + self.restorer(x_s)
            l_pix = charbonnier(y_hat, y_s, cfg.charbonnier_eps)
            return {"loss": l_pix, "pix": l_pix.detach()}

        x_r = _need(batch, "x_r")
        target = _need(batch, "y_ref") if cfg.mode == "daa_ref" else y_s
        if x_r.shape != x_s.shape or target.shape != x_s.shape:
            raise ValueError(f"x_s, x_r and the target must share one shape; got {tuple(x_s.shape)}, "
                             f"{tuple(x_r.shape)}, {tuple(target.shape)}")
        r_s, r_r = self.restore_pair(x_s, x_r)
        return self.loss_from_residuals(batch, r_s, r_r, alpha, draws, generator)

    def restore_pair(self, x_s: torch.Tensor, x_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """R's residuals on the synthetic and the real batch: one call on [x_s; x_r], or two (BatchNorm)."""
        if self.joint_restorer:
            r = self.restorer(torch.cat([x_s, x_r], 0))
            return r[:x_s.shape[0]], r[x_s.shape[0]:]
        return self.restorer(x_s), self.restorer(x_r)

    def loss_from_residuals(self, batch: dict[str, torch.Tensor], r_s: torch.Tensor, r_r: torch.Tensor,
                            alpha: float, draws: StepDraws | None = None,
                            generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The daa / daa_ref loss given R's residuals r_s = R(x_s), r_r = R(x_r) (forward = restore_pair + this;
        daa.diagnose calls it with leaf residuals to read the loss's gradient on R's outputs)."""
        cfg = self.cfg
        x_s, y_s, x_r = batch["x_s"], batch["y_s"], batch["x_r"]
        target = _need(batch, "y_ref") if cfg.mode == "daa_ref" else y_s
        b = x_s.shape[0]
        if draws is None:
            draws = self.draw(b, x_s.shape[1:], x_s.device, generator, dtype=x_s.dtype)

        if cfg.uses_negatives and cfg.detach_negatives:
            pos, y_hat_s = build_conditions(target, x_s, x_r, r_s, r_r, draws.gammas, draws.swap_pos, None,
                                            draws.noise, impl=cfg.kernels)
            # negatives = positives built from swapped residuals: x_s + r_r and x_r + r_s
            neg, _ = build_conditions(target, x_s, x_r, r_r.detach(), r_s.detach(), draws.gammas, draws.swap_neg,
                                      None, draws.noise, impl=cfg.kernels)
            cond = torch.cat([pos, neg], 0)
        else:
            cond, y_hat_s = build_conditions(target, x_s, x_r, r_s, r_r, draws.gammas, draws.swap_pos,
                                             draws.swap_neg if cfg.uses_negatives else None, draws.noise,
                                             impl=cfg.kernels)
        l_pix = charbonnier(y_hat_s, y_s, cfg.charbonnier_eps)

        n_branches = cond.shape[0] // b
        eps_hat = _atleast_f32(self.denoiser(cond, draws.gammas.repeat(n_branches)))
        noise = _atleast_f32(draws.noise)
        out = {"pix": l_pix.detach()}
        if cfg.uses_negatives:
            per_pos = _per_sample_mse(eps_hat[:b], noise)
            per_neg = _per_sample_mse(eps_hat[b:], noise)
            d_pos, d_neg = per_pos.mean(), per_neg.mean()
            if cfg.triplet_reduction == "batch":
                trip = F.relu(d_pos - d_neg + cfg.triplet_margin)
            else:
                trip = F.relu(per_pos - per_neg + cfg.triplet_margin).mean()
            l_noise = d_pos + trip
            if cfg.average_noise_terms:
                l_noise = l_noise / 2
            out.update(mse_neg=d_neg.detach(), triplet=trip.detach(), per_sample_mse=per_pos.detach())
        else:
            per_pos = _per_sample_mse(eps_hat, noise)
            d_pos = per_pos.mean()
            l_noise = d_pos
            out["per_sample_mse"] = per_pos.detach()
        total = l_pix + alpha * l_noise
        out.update(loss=total, noise=l_noise.detach(), mse_pos=d_pos.detach(),
                   alpha=torch.tensor(float(alpha)))
        return out


def _per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).pow(2).flatten(1).mean(1)


def _need(batch: dict, key: str) -> torch.Tensor:
    if key not in batch:
        raise KeyError(f"batch has no {key!r}; got keys {sorted(batch)} (need x_s, y_s, x_r, and y_ref for daa_ref)")
    return batch[key]
