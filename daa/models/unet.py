"""The paper's default restorer: a plain 4-level U-Net with LeakyReLU, 8,559,171 parameters (spec §3.2).

Encoder: conv blocks of [Conv3×3 → LReLU(0.2)] ×2 at 64/128/256/512 channels with avg-pool between them.
Decoder: bilinear ×2 (align_corners=True) → Conv3×3 halving channels → concat skip → conv block.
Head: Conv3×3 64→3 with no activation; the output is the residual. No normalisation layers.
Parameter names follow the official `RestorationNet` (down_path / up_path / last) so its weights load as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Restorer
from .registry import register_restorer


@dataclass
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    depth: int = 4
    """Number of resolution levels; H, W are padded to a multiple of 2**(depth-1)."""
    wf: int = 64
    """Channels at the first level; level i has wf·2**i."""
    slope: float = 0.2
    """LeakyReLU negative slope."""

    def __post_init__(self):
        if self.depth < 1 or self.wf < 1:
            raise ValueError(f"unet needs depth >= 1 and wf >= 1, got depth={self.depth}, wf={self.wf}")


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=True),
            nn.LeakyReLU(slope, inplace=True),
        )

    def forward(self, x):
        return self.block(x)


class _UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
        )
        self.conv_block = _ConvBlock(cin, cout, slope)

    def forward(self, x, bridge):
        up = self.up(x)
        # sizes always match because the input is padded to a multiple of 2**(depth-1)
        return self.conv_block(torch.cat([up, bridge], 1))


@register_restorer("unet", UNetConfig, presets={"tiny": dict(depth=3, wf=8)})
class UNetRestorer(Restorer):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        self.size_multiple = 2 ** (cfg.depth - 1)
        self.down_path = nn.ModuleList()
        prev = cfg.in_channels
        for i in range(cfg.depth):
            self.down_path.append(_ConvBlock(prev, (2**i) * cfg.wf, cfg.slope))
            prev = (2**i) * cfg.wf
        self.up_path = nn.ModuleList()
        for i in reversed(range(cfg.depth - 1)):
            self.up_path.append(_UpBlock(prev, (2**i) * cfg.wf, cfg.slope))
            prev = (2**i) * cfg.wf
        self.last = nn.Conv2d(prev, cfg.out_channels, 3, padding=1, bias=True)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, down in enumerate(self.down_path):
            x = down(x)
            if i != len(self.down_path) - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        for i, up in enumerate(self.up_path):
            x = up(x, skips[-i - 1])
        return self.last(x)
