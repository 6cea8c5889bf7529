"""Restormer (Zamir et al., 2022) as shipped in the official Noise-DA repo: 26,111,668 parameters at the defaults.

A 4-level U-shaped transformer: 3×3 patch embedding, TransformerBlocks of [LayerNorm → MDTA (transposed channel
attention with depthwise-conv q/k/v and a learnable per-head temperature)] and [LayerNorm → GDFN (gated depthwise
feed-forward)] with residuals, Downsample = conv + PixelUnshuffle, Upsample = conv + PixelShuffle, concat skips
(1×1-reduced at levels 3 and 2, not at level 1, which therefore runs at 2·dim), refinement blocks and a 3×3 output.

Like the Noise-DA copy (where `+ inp_img` is commented out) the output is the residual; the original Restormer adds
the input back. Parameter names are the official ones so checkpoints load; einops is replaced by reshapes.
Note the official patch embedding is bias-free whatever `bias` says, and we keep that.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Restorer
from .registry import register_restorer


@dataclass
class RestormerConfig:
    in_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    """Channels at level 1; level i has dim·2**(i-1)."""
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    """TransformerBlocks at encoder levels 1-3 and the latent (decoder levels reuse the level-1..3 counts)."""
    num_refinement_blocks: int = 4
    """TransformerBlocks after decoder level 1, at 2·dim channels."""
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    """Attention heads per level; each level's channels must divide by its heads."""
    ffn_expansion_factor: float = 2.66
    """GDFN hidden width = int(channels · factor)."""
    bias: bool = False
    """Biases in the attention / FFN / reduce / output convs."""
    layernorm_type: str = "BiasFree"
    """'BiasFree' (scale only, no mean subtraction) or 'WithBias'."""
    dual_pixel_task: bool = False
    """Dual-pixel defocus deblurring: adds a 1×1 skip from the patch embedding (use in_channels=6)."""

    def __post_init__(self):
        self.num_blocks, self.heads = tuple(self.num_blocks), tuple(self.heads)  # lists from YAML
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError(f"restormer needs 4 num_blocks and 4 heads, got {self.num_blocks} and {self.heads}")
        if min(self.in_channels, self.out_channels, self.dim, *self.heads) < 1:
            raise ValueError(f"restormer needs positive channel and head counts, got {self}")
        if min(*self.num_blocks, self.num_refinement_blocks) < 0 or self.ffn_expansion_factor <= 0:
            raise ValueError(f"restormer needs block counts >= 0 and ffn_expansion_factor > 0, got {self}")
        if self.dim % 2:
            raise ValueError(f"restormer needs an even dim (Downsample halves it, then PixelUnshuffle), got {self.dim}")
        # decoder level 1 and refinement run at 2·dim with heads[0]
        for level, (c, h) in enumerate(zip((self.dim, 2 * self.dim, 4 * self.dim, 8 * self.dim), self.heads), 1):
            if c % h:
                raise ValueError(f"restormer level {level} has {c} channels, not divisible by heads={h}")
        if self.layernorm_type not in ("BiasFree", "WithBias"):
            raise ValueError(f"restormer layernorm_type must be 'BiasFree' or 'WithBias', got {self.layernorm_type!r}")


class _BiasFreeLayerNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight


class _WithBiasLayerNorm(_BiasFreeLayerNorm):
    def __init__(self, dim: int):
        super().__init__(dim)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    """Per-pixel LayerNorm over channels of a (B, C, H, W) map (`body` holds the weights, as officially)."""

    def __init__(self, dim: int, kind: str):
        super().__init__()
        self.body = _BiasFreeLayerNorm(dim) if kind == "BiasFree" else _WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """GDFN: 1×1 in → 3×3 depthwise → gelu(x1)·x2 → 1×1 out."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class Attention(nn.Module):
    """MDTA: attention across channels (C/heads × C/heads per head), so cost is linear in H·W."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # 'b (head c) h w -> b head c (h w)'
        qkv = self.qkv_dwconv(self.qkv(x))
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in qkv.chunk(3, dim=1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (torch.einsum("bncs,bnds->bncd", q, k) * self.temperature).softmax(dim=-1)
        out = torch.einsum("bncd,bnds->bncs", attn, v).reshape(b, c, h, w)
        return self.project_out(out)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layernorm_type: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, layernorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layernorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_c: int, embed_dim: int, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, n_feat: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_restorer(
    "restormer",
    RestormerConfig,
    presets={"tiny": dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2))},
)
class Restormer(Restorer):
    size_multiple = 8

    def __init__(self, cfg: RestormerConfig):
        super().__init__()
        self.cfg = cfg
        self.in_channels, self.out_channels = cfg.in_channels, cfg.out_channels
        d, nb, hd = cfg.dim, cfg.num_blocks, cfg.heads

        def blocks(c: int, heads: int, n: int) -> nn.Sequential:
            return nn.Sequential(
                *[TransformerBlock(c, heads, cfg.ffn_expansion_factor, cfg.bias, cfg.layernorm_type) for _ in range(n)]
            )

        # the official file builds the embedding without passing `bias`, so it is always bias-free
        self.patch_embed = OverlapPatchEmbed(cfg.in_channels, d)
        self.encoder_level1 = blocks(d, hd[0], nb[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = blocks(2 * d, hd[1], nb[1])
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = blocks(4 * d, hd[2], nb[2])
        self.down3_4 = Downsample(4 * d)
        self.latent = blocks(8 * d, hd[3], nb[3])
        self.up4_3 = Upsample(8 * d)
        self.reduce_chan_level3 = nn.Conv2d(8 * d, 4 * d, 1, bias=cfg.bias)
        self.decoder_level3 = blocks(4 * d, hd[2], nb[2])
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, 1, bias=cfg.bias)
        self.decoder_level2 = blocks(2 * d, hd[1], nb[1])
        self.up2_1 = Upsample(2 * d)  # no channel reduction: level 1 decodes at 2·dim
        self.decoder_level1 = blocks(2 * d, hd[0], nb[0])
        self.refinement = blocks(2 * d, hd[0], cfg.num_refinement_blocks)
        if cfg.dual_pixel_task:
            self.skip_conv = nn.Conv2d(d, 2 * d, 1, bias=cfg.bias)
        self.output = nn.Conv2d(2 * d, cfg.out_channels, 3, padding=1, bias=cfg.bias)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.patch_embed(x)
        e1 = self.encoder_level1(emb)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        lat = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1)))
        if self.cfg.dual_pixel_task:
            d1 = d1 + self.skip_conv(emb)
        return self.output(d1)  # residual: the official `+ inp_img` is commented out in Noise-DA
