"""Exponential moving average of the restorer, with the decay set by a half-life in images (EDM style).

decay per step = 0.5 ** (images_in_step / half_life_images), so the average forgets at the same rate per image
whatever the batch size or world size. The official EMA (decay 0.9999 per step at global batch 192) is a half-life
of ≈ 1.33 M images: `half_life_from_decay(0.9999, 192)`.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def half_life_from_decay(decay: float, images_per_step: int) -> float:
    """The half-life in images of a per-step decay at a given global batch."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
    return images_per_step * math.log(0.5) / math.log(decay)


class EMA(nn.Module):
    """Holds a frozen copy of `model` whose parameters track an exponential moving average; buffers are copied."""

    def __init__(self, model: nn.Module, half_life_images: float):
        super().__init__()
        if half_life_images <= 0:
            raise ValueError(f"EMA half-life must be > 0 images, got {half_life_images}")
        self.half_life_images = float(half_life_images)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay(self, images: float) -> float:
        return 0.5 ** (images / self.half_life_images)

    @torch.no_grad()
    def update(self, model: nn.Module, images: float) -> float:
        """Fold `model`'s current weights in after a step that consumed `images` images; returns the decay used."""
        d = self.decay(images)
        ema_params = dict(self.module.named_parameters())
        for name, p in model.named_parameters():
            ema_params[name].lerp_(p.detach().to(ema_params[name].dtype), 1.0 - d)
        ema_buffers = dict(self.module.named_buffers())
        for name, b in model.named_buffers():
            ema_buffers[name].copy_(b)
        return d

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
