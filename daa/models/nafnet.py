"""NAFNet (Chen et al., 2022, "Simple Baselines for Image Restoration"), NAFNet-width32 (SIDD): 29,159,715 parameters.

NAFBlock: LayerNorm2d → 1×1 expand → 3×3 depthwise → SimpleGate → simplified channel attention → 1×1, scaled by β;
then LayerNorm2d → 1×1 FFN → SimpleGate → 1×1, scaled by γ (β, γ start at zero, no dropout). The U-shape downsamples
with 2×2 stride-2 convs (channels ×2), upsamples with 1×1 conv + PixelShuffle(2), and adds encoder skips.
Parameter names follow the official megvii NAFNet so its checkpoints load.

Changed vs the original: the output is the residual (the ending conv, no `+ inp`), in/out channels may differ,
LayerNorm2d uses plain autograd instead of a hand-written backward, and odd sizes are padded by `Restorer`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Restorer
from .registry import register_restorer


@dataclass
class NAFNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    width: int = 32
    """Channels at full resolution; each encoder level doubles them."""
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)
    """NAFBlocks per encoder level; H, W are padded to a multiple of 2**len(enc_blk_nums)."""
    middle_blk_num: int = 12
    """NAFBlocks at the lowest resolution."""
    dec_blk_nums: tuple[int, ...] = (2, 2, 2, 2)
    """NAFBlocks per decoder level, coarsest first; must have as many levels as the encoder."""
    dw_expand: int = 2
    """Channel expansion of the depthwise (attention) branch."""
    ffn_expand: int = 2
    """Channel expansion of the feed-forward branch."""

    def __post_init__(self):
        self.enc_blk_nums, self.dec_blk_nums = tuple(self.enc_blk_nums), tuple(self.dec_blk_nums)  # lists from YAML
        enc, dec = self.enc_blk_nums, self.dec_blk_nums
        if len(enc) != len(dec):
            raise ValueError(f"nafnet needs as many decoder as encoder levels, got {enc} and {dec}")
        if min(self.in_channels, self.out_channels, self.width) < 1:
            raise ValueError(f"nafnet needs positive channel counts, got {self}")
        if min((self.middle_blk_num, *self.enc_blk_nums, *self.dec_blk_nums)) < 0:
            raise ValueError(f"nafnet block counts must be >= 0, got {self}")
        # SimpleGate halves the channels, so the expanded widths must be even
        dw, ffn = self.dw_expand * self.width, self.ffn_expand * self.width
        if min(self.dw_expand, self.ffn_expand) < 1 or dw % 2 or ffn % 2:
            raise ValueError(f"nafnet needs dw_expand, ffn_expand >= 1 with even expanded widths, got {self}")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of each pixel of a (B, C, H, W) map, with per-channel weight and bias."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return x1 * x2


class NAFBlock(nn.Module):
    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw, ffn = c * dw_expand, c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))  # simplified channel attn
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        # zero init: every block starts as the identity
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


@register_restorer(
    "nafnet", NAFNetConfig, presets={"tiny": dict(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))}
)
class NAFNet(Restorer):
    def __init__(self, cfg: NAFNetConfig):
        super().__init__()
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        self.size_multiple = 2 ** len(cfg.enc_blk_nums)

        def blocks(c: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[NAFBlock(c, cfg.dw_expand, cfg.ffn_expand) for _ in range(n)])

        self.intro = nn.Conv2d(cfg.in_channels, cfg.width, 3, padding=1)
        self.ending = nn.Conv2d(cfg.width, cfg.out_channels, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.decoders, self.ups = nn.ModuleList(), nn.ModuleList()
        chan = cfg.width
        for n in cfg.enc_blk_nums:
            self.encoders.append(blocks(chan, n))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = blocks(chan, cfg.middle_blk_num)
        for n in cfg.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(blocks(chan, n))

    output_layer_name = "ending"  # registered before the encoders

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = dec(up(x) + skip)
        return self.ending(x)
