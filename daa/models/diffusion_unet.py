"""Conditional noise predictor ε_θ: a guided-diffusion U-Net conditioned on the continuous noise level ᾱ (spec §3.1).

Input: 9 channels [ỹ (noisy target), condition slot A, condition slot B]; output: the predicted noise (3 channels).
The noise level enters as `gamma_embedding(ᾱ, 64)` (raw ᾱ, no ×1000) → Linear → SiLU → Linear (256-d), and every
ResBlock applies it as a scale/shift after its second GroupNorm. Defaults reproduce the official config exactly:
62,643,075 parameters, one attention block (the middle one, 512 ch, 16 heads × 32) because the official
`attn_res=[16]` never matches a downsample factor of a 4-level net (spec §10.8) — we keep that semantics
(`attn_res` holds downsample factors) so `attn_res=(8,)` adds what was probably intended.

Module and parameter names follow the official file (cond_embed, input_blocks, middle_block, output_blocks, out,
in_layers, emb_layers, out_layers, skip_connection, qkv, proj_out), so official checkpoints load with
`load_state_dict`. Attention runs through `scaled_dot_product_attention` (same math as the legacy einsum with the
1/√√ch scale applied to q and k); xformers is used on CUDA when `attention="xformers"`, or `"auto"` finds it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from kernels.group_norm_silu import group_norm_silu

from .base import check_image_batch, kaiming_init_, pad_to_multiple
from .registry import make_config

_ATTENTION_CHOICES = ("auto", "sdpa", "xformers")
_INIT_CHOICES = ("kaiming", "guided")
_NORM_CHOICES = ("fp32", "native", "fused")
_SILU_CHOICES = ("fused", "official")


@dataclass
class DiffusionUNetConfig:
    in_channel: int = 9
    """[noisy target, slot A, slot B], 3 channels each."""
    out_channel: int = 3
    inner_channel: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    res_blocks: int = 2
    attn_res: tuple[int, ...] = (16,)
    """Downsample factors that get attention in encoder/decoder. Official (16,) never fires (factors are 1..8)."""
    num_head_channels: int = 32
    num_heads: int = 1
    """Used only when num_head_channels is -1."""
    dropout: float = 0.2
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_checkpoint: bool = False
    """Gradient checkpointing per block (official: always on). Saves activation memory, costs a re-forward."""
    attention: str = "auto"
    """'sdpa' (torch scaled_dot_product_attention), 'xformers' (CUDA only), or 'auto' (xformers when usable)."""
    init: str = "kaiming"
    """'kaiming' = official init_weights over everything (overwrites zero-init, spec §10.7); 'guided' = keep
    guided-diffusion's zero-init of the output conv, each ResBlock's last conv and the attention proj_out."""
    pixel_unshuffle: int = 1
    """Space-to-depth factor f around the U-Net (not in the official model, which is f=1): the network runs on
    (in_channel·f², H/f, W/f) and its output is depth-to-space'd back, so every convolution costs ~1/f² as much.
    DAA-mini uses f=4 to make the joint step affordable on a CPU (preset 'mini')."""
    norm: str = "fp32"
    """GroupNorm under bf16/fp16: 'fp32' = guided-diffusion's GroupNorm32 (input and affine cast to fp32 and the
    output back: two extra passes over the activations); 'native' = F.group_norm in the input dtype, whose kernels
    accumulate the statistics in fp32 anyway; 'fused' = GroupNorm, the ResBlock's scale/shift and the
    SiLU after it in one Triton kernel on CUDA (kernels/group_norm_silu.py: fp32 maths, one rounding), the eager
    reference elsewhere; the attention block's GroupNorm (no SiLU after it) runs 'native'. The same function in
    fp32, the same parameter names for all three."""
    silu: str = "fused"
    """'fused' = nn.SiLU (one kernel); 'official' = x·sigmoid(x) as guided-diffusion's nn.py writes it (two kernels
    and an extra activation kept for backward; the faithful official step of launch/bench/step.py)."""

    def __post_init__(self):
        self.channel_mults = tuple(self.channel_mults)
        self.attn_res = tuple(self.attn_res)
        if self.attention not in _ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {', '.join(_ATTENTION_CHOICES)}, got {self.attention!r}")
        if self.init not in _INIT_CHOICES:
            raise ValueError(f"init must be one of {', '.join(_INIT_CHOICES)}, got {self.init!r}")
        if self.inner_channel % 32 or any(self.inner_channel * m % 32 for m in self.channel_mults):
            raise ValueError(f"GroupNorm(32) needs every level's channels divisible by 32 (inner_channel="
                             f"{self.inner_channel}, channel_mults={self.channel_mults})")
        if self.norm not in _NORM_CHOICES:
            raise ValueError(f"norm must be one of {', '.join(_NORM_CHOICES)}, got {self.norm!r}")
        if self.silu not in _SILU_CHOICES:
            raise ValueError(f"silu must be one of {', '.join(_SILU_CHOICES)}, got {self.silu!r}")
        if self.pixel_unshuffle < 1:
            raise ValueError(f"pixel_unshuffle must be >= 1, got {self.pixel_unshuffle}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


TINY = dict(inner_channel=32, channel_mults=(1, 2, 2), res_blocks=1, num_head_channels=32, dropout=0.0)
"""A CPU-fast configuration for tests and the demo (~1 M parameters)."""
MINI = dict(TINY, pixel_unshuffle=4)
"""DAA-mini on a CPU: TINY on 4×4 space-to-depth input (~16× fewer FLOPs per pixel than TINY)."""
PRESETS = {"default": {}, "tiny": TINY, "mini": MINI}


def gamma_embedding(gammas: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(γ·f_k), sin(γ·f_k)] with f_k = exp(−ln(max_period)·k/half); γ is the raw continuous ᾱ."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=gammas.device) / half)
    args = gammas.float().reshape(-1, 1) * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in at least fp32 (as guided-diffusion), cast back to the input dtype. The affine
    parameters are upcast too, so it also works when DeepSpeed bf16 has cast them to bf16."""

    def forward(self, x):
        dt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        w = None if self.weight is None else self.weight.to(dt)
        b = None if self.bias is None else self.bias.to(dt)
        return F.group_norm(x.to(dt), self.num_groups, w, b, self.eps).to(x.dtype)


class NativeGroupNorm(nn.GroupNorm):
    """GroupNorm in the input dtype (statistics accumulated in fp32 by the kernels); the affine parameters follow
    the input dtype."""

    def forward(self, x):
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.group_norm(x, self.num_groups, w, b, self.eps)


class FusedGroupNormSiLU(nn.GroupNorm):
    """GroupNorm → optional (B, C) scale/shift → SiLU as one op (`norm='fused'`). It takes the place of a GroupNorm +
    SiLU pair; the SiLU slot after it holds nn.Identity, so parameter names (and checkpoints) do not change."""

    def forward(self, x, scale=None, shift=None):
        return _group_norm_silu(x, self.weight, self.bias, self.num_groups, self.eps, scale, shift)


# torch.compile (run.compile) does not trace into the Triton launch wrapper: a compiled block calls the fused op
# between its graphs.
_group_norm_silu = torch.compiler.disable(group_norm_silu)


class OfficialSiLU(nn.Module):
    """x·sigmoid(x), as guided-diffusion's nn.SiLU replacement (kept for a faithful official step)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


def _norm(ch: int, kind: str = "fp32") -> nn.GroupNorm:
    return {"fp32": GroupNorm32, "native": NativeGroupNorm, "fused": FusedGroupNormSiLU}[kind](32, ch)


def _act(kind: str = "fused", norm: str = "fp32") -> nn.Module:
    """The activation after a GroupNorm of kind `norm` (nn.Identity when that norm already applies the SiLU)."""
    if norm == "fused":
        return nn.Identity()
    return nn.SiLU() if kind == "fused" else OfficialSiLU()


class ResBlock(nn.Module):
    def __init__(self, ch, emb_ch, dropout, out_ch=None, scale_shift=True, up=False, down=False, norm="fp32",
                 act="fused"):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(_norm(ch, norm), _act(act, norm), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd = self.x_upd = nn.Upsample(scale_factor=2, mode="nearest")
        elif down:
            self.h_upd = self.x_upd = nn.AvgPool2d(2)
        self.emb_layers = nn.Sequential(_act(act), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(
            _norm(out_ch, norm), _act(act, norm), nn.Dropout(p=dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x, emb):
        if self.updown:  # resample after GN+SiLU, before the conv, on both paths
            h = self.in_layers[:-1](x)
            h, x = self.h_upd(h), self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            if isinstance(self.out_layers[0], FusedGroupNormSiLU):  # norm, scale/shift and SiLU in one op
                h = self.out_layers[0](h, scale, shift)
            else:
                h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over pixels with guided-diffusion's legacy QKV layout (per head: [q, k, v] channels)."""

    def __init__(self, ch, num_heads=1, num_head_channels=-1, attention="auto", norm="fp32"):
        super().__init__()
        if num_head_channels != -1:
            if ch % num_head_channels:
                raise ValueError(f"attention channels {ch} not divisible by num_head_channels {num_head_channels}")
            num_heads = ch // num_head_channels
        self.num_heads = num_heads
        self.attention = attention
        self.norm = _norm(ch, "native" if norm == "fused" else norm)  # no SiLU follows this one
        self.qkv = nn.Conv1d(ch, ch * 3, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))  # (b, 3c, T)
        t = qkv.shape[-1]
        # legacy layout: reshape(b*heads, 3*ch, T).split(ch) → q, k, v each (b, heads, ch, T)
        q, k, v = qkv.reshape(b, self.num_heads, 3, c // self.num_heads, t).unbind(2)
        q, k, v = (z.transpose(-1, -2) for z in (q, k, v))  # (b, heads, T, ch)
        h = _attention(q, k, v, self.attention)  # softmax(q·kᵀ/√ch)·v, the legacy math
        h = h.transpose(-1, -2).reshape(b, c, t)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


def _attention(q, k, v, mode: str) -> torch.Tensor:
    if mode != "sdpa" and q.is_cuda:
        try:
            import xformers.ops as xops
        except ImportError as err:
            if mode == "xformers":
                raise RuntimeError("attention='xformers' but xformers does not import; use 'sdpa' or 'auto'") from err
        else:  # xformers wants (b, T, heads, ch)
            out = xops.memory_efficient_attention(*(z.transpose(1, 2) for z in (q, k, v)))
            return out.transpose(1, 2)
    elif mode == "xformers":
        raise RuntimeError("attention='xformers' needs CUDA tensors; use 'sdpa' or 'auto' on CPU")
    return F.scaled_dot_product_attention(q, k, v)


class EmbedSequential(nn.Sequential):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class DiffusionUNet(nn.Module):
    def __init__(self, cfg: DiffusionUNetConfig):
        super().__init__()
        self.cfg = cfg
        c, emb_ch = cfg.inner_channel, cfg.inner_channel * 4
        rb = lambda cin, cout, **kw: ResBlock(cin, emb_ch, cfg.dropout, cout, cfg.use_scale_shift_norm,  # noqa
                                              norm=cfg.norm, act=cfg.silu, **kw)
        attn = lambda ch: AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, cfg.attention, cfg.norm)  # noqa
        if not cfg.resblock_updown:
            raise ValueError("only resblock_updown=True (the official setting) is implemented")
        self.cond_embed = nn.Sequential(nn.Linear(c, emb_ch), _act(cfg.silu), nn.Linear(emb_ch, emb_ch))
        ch = int(cfg.channel_mults[0] * c)
        f2 = cfg.pixel_unshuffle ** 2
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channel * f2, ch, 3, padding=1))])
        skip_chs, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.res_blocks):
                layers = [rb(ch, int(mult * c))]
                ch = int(mult * c)
                if ds in cfg.attn_res:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chs.append(ch)
            if level != len(cfg.channel_mults) - 1:
                self.input_blocks.append(EmbedSequential(rb(ch, ch, down=True)))
                skip_chs.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(rb(ch, ch), attn(ch), rb(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mults))[::-1]:
            for i in range(cfg.res_blocks + 1):
                layers = [rb(ch + skip_chs.pop(), int(c * mult))]
                ch = int(c * mult)
                if ds in cfg.attn_res:
                    layers.append(attn(ch))
                if level and i == cfg.res_blocks:
                    layers.append(rb(ch, ch, up=True))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(_norm(ch, cfg.norm), _act(cfg.silu, cfg.norm), nn.Conv2d(ch, cfg.out_channel * f2, 3,
                                                                                 padding=1))
        self.size_multiple = 2 ** (len(cfg.channel_mults) - 1) * cfg.pixel_unshuffle
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kaiming_init_(self)
        if self.cfg.init == "guided":  # guided-diffusion's zero_module() on the layers that end a residual branch
            zero = [self.out[-1]] + [m.out_layers[-1] for m in self.modules() if isinstance(m, ResBlock)]
            zero += [m.proj_out for m in self.modules() if isinstance(m, AttentionBlock)]
            for m in zero:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
        """x: (N, in_channel, H, W) conditions; gammas: (N,) continuous ᾱ. Returns predicted noise (N, 3, H, W)."""
        check_image_batch(x, self.cfg.in_channel, "diffusion U-Net")
        if gammas.numel() != x.shape[0]:
            raise ValueError(f"diffusion U-Net needs one noise level per sample: {gammas.numel()} for {x.shape[0]}")
        x, h0, w0 = pad_to_multiple(x, self.size_multiple)
        f = self.cfg.pixel_unshuffle
        if f > 1:
            x = F.pixel_unshuffle(x, f)
        emb = gamma_embedding(gammas.reshape(-1), self.cfg.inner_channel)
        emb = self.cond_embed(emb.to(self.cond_embed[0].weight.dtype))
        hs, h = [], x
        for module in self.input_blocks:
            h = self._run(module, h, emb)
            hs.append(h)
        h = self._run(self.middle_block, h, emb)
        for module in self.output_blocks:
            h = self._run(module, torch.cat([h, hs.pop()], dim=1), emb)
        out = self.out(h)
        if f > 1:
            out = F.pixel_shuffle(out, f)
        return out[..., :h0, :w0]

    def _run(self, module, h, emb):
        if self.cfg.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(module, h, emb, use_reentrant=False)
        return module(h, emb)


def build_diffusion_unet(preset: str = "default", **overrides) -> DiffusionUNet:
    """Build ε_θ: preset 'default' (paper, 62.6 M params), 'tiny' (CPU tests) or 'mini' (DAA-mini on CPU), then
    field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"diffusion U-Net has no preset {preset!r}; available: {', '.join(PRESETS)}")
    return DiffusionUNet(make_config(DiffusionUNetConfig, {**PRESETS[preset], **overrides}, "diffusion U-Net"))
