"""DnCNN (Zhang et al., 2017) as shipped in the official Noise-DA repo: 558,336 parameters at the defaults.

Layout: Conv3×3 → ReLU, then (num_of_layers − 2) × [Conv3×3 → BatchNorm2d → ReLU], then Conv3×3 to the output
channels; every conv is bias-free, `features` channels wide. Like the official module (and DnCNN's own residual
learning) the output is the residual, so nothing is changed beyond separate in/out channel counts; the Sequential
is named `dncnn` so official state dicts load as they are. No downsampling, hence size_multiple = 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Restorer
from .registry import register_restorer


@dataclass
class DnCNNConfig:
    in_channels: int = 3
    out_channels: int = 3
    features: int = 64
    """Channels of every hidden conv."""
    num_of_layers: int = 17
    """Total conv layers, first and last included (17 in the paper's DnCNN-S)."""

    def __post_init__(self):
        if min(self.in_channels, self.out_channels, self.features) < 1:
            raise ValueError(f"dncnn needs positive channel counts, got {self}")
        if self.num_of_layers < 2:
            raise ValueError(f"dncnn needs num_of_layers >= 2 (first and last conv), got {self.num_of_layers}")


@register_restorer("dncnn", DnCNNConfig, presets={"tiny": dict(features=16, num_of_layers=5)})
class DnCNN(Restorer):
    size_multiple = 1

    def __init__(self, cfg: DnCNNConfig):
        super().__init__()
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        f = cfg.features
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, f, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(cfg.num_of_layers - 2):
            layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(f, cfg.out_channels, 3, padding=1, bias=False))
        self.dncnn = nn.Sequential(*layers)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.dncnn(x)
