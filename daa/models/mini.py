"""MiniUNet: the 0.2 M-parameter residual U-Net of DAA-mini (notes/data.md §3.4), for CPU-scale experiments.

Not one of the paper's restorers. Its first step is a ×2 pixel-unshuffle, so every convolution runs at half
resolution and a 16 × 64² training step costs ~50 ms on two CPU cores (the paper's `unet` at wf=16: ~300 ms).
Layout: unshuffle ×2 → conv 12→w, `head` convs at w → stride-2 conv to 2w, `mid` convs at 2w → transposed conv back
to w, concatenated with the skip, `tail` convs → conv to 12 → pixel-shuffle ×2 = the residual. LeakyReLU(0.2)
everywhere; residual output as every restorer here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Restorer
from .registry import register_restorer


@dataclass
class MiniUNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    width: int = 32
    head: int = 2
    """3×3 convs after the stem at width w (half resolution)."""
    mid: int = 4
    """3×3 convs at 2w (quarter resolution)."""
    tail: int = 2
    """3×3 convs after the skip concatenation."""

    def __post_init__(self):
        if min(self.in_channels, self.out_channels, self.width) < 1 or min(self.head, self.mid, self.tail) < 0:
            raise ValueError(f"mini needs positive channel counts and non-negative conv counts, got {self}")


def _convs(ch: int, n: int) -> list[nn.Module]:
    out: list[nn.Module] = []
    for _ in range(n):
        out += [nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
    return out


@register_restorer("mini", MiniUNetConfig, presets={"tiny": dict(width=16, head=1, mid=1, tail=1)})
class MiniUNet(Restorer):
    size_multiple = 4
    name = "mini"

    def __init__(self, cfg: MiniUNetConfig):
        super().__init__()
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        w = cfg.width
        self.head = nn.Sequential(nn.Conv2d(4 * cfg.in_channels, w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  *_convs(w, cfg.head))
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  *_convs(2 * w, cfg.mid))
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 2, stride=2), nn.LeakyReLU(0.2, inplace=True))
        self.tail = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  *_convs(w, max(cfg.tail - 1, 0)), nn.Conv2d(w, 4 * cfg.out_channels, 3, padding=1))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(F.pixel_unshuffle(x, 2))
        h = self.tail(torch.cat([h, self.up(self.down(h))], dim=1))
        return F.pixel_shuffle(h, 2)
