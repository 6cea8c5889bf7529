"""Fused GroupNorm → per-sample scale/shift → SiLU, the memory-bound chain of every ResBlock of ε_θ.

    y = silu(z'),  z' = (GN(x)·w + b)·(1 + scale) + shift,  GN(x) = (x − μ_g)·rstd_g  over each (sample, group)

`scale`, `shift` are (B, C) (the ResBlock's time embedding, `use_scale_shift_norm`); without them it is GN + SiLU
(the ResBlock's first norm and the U-Net's output head). Statistics, the affine and the SiLU run in fp32 whatever the
input dtype (fp64 for fp64); y is rounded once to the input dtype. Eager PyTorch under bf16 runs the same chain as
GroupNorm32's upcast, the norm, the downcast, the multiply, the add and the SiLU: six kernels, each a full read +
write of the activations (and as many saved tensors for backward); here it is one kernel forward and one backward.

One program per (sample, group). It walks the group in [BLOCK_HW, CPG] tiles (CPG = channels per group) addressed by
strides, so NCHW and channels_last (NHWC) inputs both run without a copy (NCHW is the fast layout: a group is one
contiguous run; in NHWC each pixel contributes CPG adjacent values, strided loads that lean on L2).
    fwd: pass 1 Σx → μ; pass 2 Σ(x−μ)² → rstd (two-pass: no cancellation for large means); pass 3 y.
         Reads 3N (the 2nd and 3rd mostly from L2: a group is ≤ a few hundred KiB), writes N + 2 floats per group.
    bwd: pass 1 recomputes z' from x (nothing but x, μ, rstd is saved) and accumulates per channel
         S1 = Σ dz', S2 = Σ dz'·x̂; pass 2 writes dx = rstd·(u·w·dz' − (Σ_c u·w·S1 + x̂·Σ_c u·w·S2)/n), u = 1 + scale.
         Reads 2·(x, dy), writes dx; the per-(sample, channel) sums give d(scale) = w·S2 + b·S1, d(shift) = S1,
         and partial dw = u·S2, db = u·S1, summed over the batch on the host side (a (B, C) tensor).
Minimal traffic (elements of x): fwd read N + write N, bwd read 2N + write N.

`group_norm_silu_reference` is the same function in eager PyTorch (fp32 inside, the result cast back).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from .dispatch import kernel_impl
from .utils import _INTERPRET, FP_FUSION, acc_dtype, contiguous


@triton.jit
def _program_group(G, CPG, CPG_P2: tl.constexpr):
    """This program's (sample, group): (program id, sample as int64, the group's channel indices, their mask)."""
    pid = tl.program_id(0)
    ch = (pid % G) * CPG + tl.arange(0, CPG_P2)
    return pid, (pid // G).to(tl.int64), ch, ch < (pid % G) * CPG + CPG


@triton.jit
def _channel_params(w_ptr, b_ptr, sc_ptr, sh_ptr, bi, ch, cm, ss_b, ss_c,
                    HAS_SS: tl.constexpr, ACC: tl.constexpr, CPG_P2: tl.constexpr):
    """Per channel of the group: weight, bias, u = 1 + scale, shift (u = 1, shift = 0 without scale/shift)."""
    w = tl.load(w_ptr + ch, mask=cm, other=0.0).to(ACC)
    bias = tl.load(b_ptr + ch, mask=cm, other=0.0).to(ACC)
    ch64 = ch.to(tl.int64)
    if HAS_SS:
        u = 1.0 + tl.load(sc_ptr + bi * ss_b + ch64 * ss_c, mask=cm, other=0.0).to(ACC)
        s = tl.load(sh_ptr + bi * ss_b + ch64 * ss_c, mask=cm, other=0.0).to(ACC)
    else:
        u = tl.full([CPG_P2], 1.0, ACC)
        s = tl.zeros([CPG_P2], dtype=ACC)
    return w, bias, u, s


@triton.jit
def _x_tile(xb, start, HW, cm, sx_hw, ACC: tl.constexpr, BLOCK_HW: tl.constexpr):
    """One [BLOCK_HW, CPG] tile of x from `start`: (spatial offsets as an int64 column, mask, values in ACC, 0 off
    the mask)."""
    hw = start + tl.arange(0, BLOCK_HW)
    hw64 = hw.to(tl.int64)[:, None]
    m = (hw < HW)[:, None] & cm[None, :]
    return hw64, m, tl.load(xb + hw64 * sx_hw, mask=m, other=0.0).to(ACC)


@triton.jit
def _gn_silu_fwd_kernel(
    x_ptr, w_ptr, b_ptr, sc_ptr, sh_ptr, y_ptr, mean_ptr, rstd_ptr,
    G, CPG, HW,
    sx_b, sx_c, sx_hw, sy_b, sy_c, sy_hw, ss_b, ss_c,
    eps,
    HAS_SS: tl.constexpr, ACC: tl.constexpr, CPG_P2: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    pid, bi, ch, cm = _program_group(G, CPG, CPG_P2)
    ch64 = ch.to(tl.int64)
    xb = x_ptr + bi * sx_b + ch64[None, :] * sx_c
    n = CPG * HW
    acc = tl.zeros([BLOCK_HW, CPG_P2], dtype=ACC)
    for start in range(0, HW, BLOCK_HW):
        acc += _x_tile(xb, start, HW, cm, sx_hw, ACC, BLOCK_HW)[2]
    mean = tl.sum(tl.sum(acc, axis=1), axis=0) / n
    acc = tl.zeros([BLOCK_HW, CPG_P2], dtype=ACC)
    for start in range(0, HW, BLOCK_HW):
        _, m, v = _x_tile(xb, start, HW, cm, sx_hw, ACC, BLOCK_HW)
        d = tl.where(m, v - mean, 0.0)
        acc += d * d
    rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(acc, axis=1), axis=0) / n + eps)
    w, bias, u, s = _channel_params(w_ptr, b_ptr, sc_ptr, sh_ptr, bi, ch, cm, ss_b, ss_c, HAS_SS, ACC, CPG_P2)
    a = rstd * w * u  # z' = (x − μ)·a + c1
    c1 = bias * u + s
    yb = y_ptr + bi * sy_b + ch64[None, :] * sy_c
    for start in range(0, HW, BLOCK_HW):
        hw64, m, v = _x_tile(xb, start, HW, cm, sx_hw, ACC, BLOCK_HW)
        z = (v - mean) * a[None, :] + c1[None, :]
        tl.store(yb + hw64 * sy_hw, (z * tl.sigmoid(z)).to(y_ptr.dtype.element_ty), mask=m)
    tl.store(mean_ptr + pid, mean)
    tl.store(rstd_ptr + pid, rstd)


@triton.jit
def _dz_tile(xb, gb, start, HW, cm, sx_hw, sg_hw, mean, a, c1, ACC: tl.constexpr, BLOCK_HW: tl.constexpr):
    """One [BLOCK_HW, CPG] tile of the backward: z' recomputed from x, dz' = dy·silu'(z') (0 outside the mask).
    Returns (spatial offsets as a column, mask, x − μ, dz')."""
    hw64, m, v = _x_tile(xb, start, HW, cm, sx_hw, ACC, BLOCK_HW)
    xc = v - mean
    g = tl.load(gb + hw64 * sg_hw, mask=m, other=0.0).to(ACC)
    z = xc * a[None, :] + c1[None, :]
    sg = tl.sigmoid(z)
    return hw64, m, xc, tl.where(m, g * sg * (1.0 + z * (1.0 - sg)), 0.0)


@triton.jit
def _gn_silu_bwd_kernel(
    x_ptr, dy_ptr, w_ptr, b_ptr, sc_ptr, sh_ptr, mean_ptr, rstd_ptr,
    dx_ptr, dwp_ptr, dbp_ptr, dsc_ptr, dsh_ptr,
    G, CPG, C, HW,
    sx_b, sx_c, sx_hw, sg_b, sg_c, sg_hw, sd_b, sd_c, sd_hw, ss_b, ss_c,
    HAS_SS: tl.constexpr, ACC: tl.constexpr, CPG_P2: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    pid, bi, ch, cm = _program_group(G, CPG, CPG_P2)
    ch64 = ch.to(tl.int64)
    mean = tl.load(mean_ptr + pid)
    rstd = tl.load(rstd_ptr + pid)
    w, bias, u, s = _channel_params(w_ptr, b_ptr, sc_ptr, sh_ptr, bi, ch, cm, ss_b, ss_c, HAS_SS, ACC, CPG_P2)
    a = rstd * w * u
    c1 = bias * u + s
    xb = x_ptr + bi * sx_b + ch64[None, :] * sx_c
    gb = dy_ptr + bi * sg_b + ch64[None, :] * sg_c
    acc1 = tl.zeros([BLOCK_HW, CPG_P2], dtype=ACC)  # Σ dz'
    acc2 = tl.zeros([BLOCK_HW, CPG_P2], dtype=ACC)  # Σ dz'·x̂
    for start in range(0, HW, BLOCK_HW):
        hw64, m, xc, dz = _dz_tile(xb, gb, start, HW, cm, sx_hw, sg_hw, mean, a, c1, ACC, BLOCK_HW)
        acc1 += dz
        acc2 += dz * (xc * rstd)
    s1 = tl.sum(acc1, axis=0)
    s2 = tl.sum(acc2, axis=0)
    tl.store(dwp_ptr + bi * C + ch64, u * s2, mask=cm)
    tl.store(dbp_ptr + bi * C + ch64, u * s1, mask=cm)
    if HAS_SS:
        tl.store(dsc_ptr + bi * C + ch64, w * s2 + bias * s1, mask=cm)
        tl.store(dsh_ptr + bi * C + ch64, s1, mask=cm)
    n = CPG * HW
    k1 = tl.sum(u * w * s1, axis=0) / n  # mean of dx̂ over the group
    k2 = tl.sum(u * w * s2, axis=0) / n  # mean of dx̂·x̂
    uw = u * w * rstd
    db_ = dx_ptr + bi * sd_b + ch64[None, :] * sd_c
    for start in range(0, HW, BLOCK_HW):
        hw64, m, xc, dz = _dz_tile(xb, gb, start, HW, cm, sx_hw, sg_hw, mean, a, c1, ACC, BLOCK_HW)
        dx = dz * uw[None, :] - rstd * (k1 + (xc * rstd) * k2)
        tl.store(db_ + hw64 * sd_hw, dx.to(dx_ptr.dtype.element_ty), mask=m)


# ---------------------------------------------------------------------------------------------------------------
# launch wrappers
# ---------------------------------------------------------------------------------------------------------------

_GPU_TILE = 2048  # elements of one [BLOCK_HW, CPG] tile: 16 fp32 registers per accumulator per thread at 4 warps
_INTERPRET_TILE = 1 << 16  # the interpreter costs ~1 ms a loop iteration whatever its size: few, big tiles


def _strides(t: torch.Tensor) -> tuple[torch.Tensor, int, int, int] | None:
    """(t, batch, channel, spatial) strides with H·W flattened to one index, or None when the spatial dims of t do
    not flatten to a single stride (then the caller copies)."""
    if t.dim() == 3:
        return t, t.stride(0), t.stride(1), t.stride(2)
    h, w = t.shape[2], t.shape[3]
    if w == 1:
        return t, t.stride(0), t.stride(1), t.stride(2)
    if h == 1 or t.stride(2) == t.stride(3) * w:
        return t, t.stride(0), t.stride(1), t.stride(3)
    return None


def _flat(t: torch.Tensor):
    s = _strides(t)
    return s if s is not None else _strides(t.contiguous())


def _tiles(cpg: int, hw: int, device: torch.device) -> tuple[int, int, int]:
    """(CPG_P2, BLOCK_HW, num_warps)."""
    cpg_p2 = triton.next_power_of_2(cpg)
    tile = _INTERPRET_TILE if (device.type != "cuda" or _INTERPRET) else _GPU_TILE
    return cpg_p2, max(1, min(triton.next_power_of_2(hw), tile // cpg_p2)), 4


def _as_bc(t: torch.Tensor | None, b: int, c: int) -> torch.Tensor | None:
    return None if t is None else t.reshape(b, c)


class GroupNormSiLUFunction(torch.autograd.Function):
    """Fused GroupNorm (+ scale/shift) + SiLU; see the module docstring. x is (B, C, H, W) or (B, C, L)."""

    @staticmethod
    def forward(ctx, x, weight, bias, scale, shift, num_groups, eps):
        b, c = x.shape[:2]
        hw = math.prod(x.shape[2:])
        x, sx_b, sx_c, sx_hw = _flat(x)
        weight, bias = contiguous(weight), contiguous(bias)  # the kernel indexes them by channel (stride 1)
        y = torch.empty_like(x)
        _, sy_b, sy_c, sy_hw = _strides(y)
        sc, sh = _as_bc(scale, b, c), _as_bc(shift, b, c)
        has_ss = sc is not None
        if has_ss and sh.stride() != sc.stride():
            sh = sh.contiguous()
            sc = sc.contiguous()
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        mean = torch.empty(b * num_groups, device=x.device, dtype=acc)
        rstd = torch.empty_like(mean)
        cpg_p2, block_hw, warps = _tiles(c // num_groups, hw, x.device)
        _gn_silu_fwd_kernel[(b * num_groups,)](
            x, weight, bias, sc if has_ss else weight, sh if has_ss else weight, y, mean, rstd,
            num_groups, c // num_groups, hw, sx_b, sx_c, sx_hw, sy_b, sy_c, sy_hw,
            sc.stride(0) if has_ss else 0, sc.stride(1) if has_ss else 0, float(eps),
            HAS_SS=has_ss, ACC=acc_dtype(x.dtype), CPG_P2=cpg_p2, BLOCK_HW=block_hw, num_warps=warps,
            enable_fp_fusion=FP_FUSION,
        )
        ctx.save_for_backward(x, weight, bias, *((sc, sh) if has_ss else ()), mean, rstd)
        ctx.has_ss, ctx.num_groups = has_ss, num_groups
        ctx.ss_shapes = (scale.shape, scale.dtype) if has_ss else None
        return y

    @staticmethod
    def backward(ctx, dy):
        if ctx.has_ss:
            x, weight, bias, sc, sh, mean, rstd = ctx.saved_tensors
        else:
            (x, weight, bias, mean, rstd), sc, sh = ctx.saved_tensors, None, None
        b, c = x.shape[:2]
        hw = math.prod(x.shape[2:])
        g = ctx.num_groups
        _, sx_b, sx_c, sx_hw = _strides(x)
        dy, sg_b, sg_c, sg_hw = _flat(dy)
        dx = torch.empty_like(x)
        _, sd_b, sd_c, sd_hw = _strides(dx)
        dwp = torch.empty(b, c, device=x.device, dtype=mean.dtype)
        dbp = torch.empty_like(dwp)
        dsc = torch.empty_like(dwp) if ctx.has_ss else None
        dsh = torch.empty_like(dwp) if ctx.has_ss else None
        cpg_p2, block_hw, warps = _tiles(c // g, hw, x.device)
        _gn_silu_bwd_kernel[(b * g,)](
            x, dy, weight, bias, sc if ctx.has_ss else weight, sh if ctx.has_ss else weight, mean, rstd,
            dx, dwp, dbp, dsc if ctx.has_ss else dwp, dsh if ctx.has_ss else dwp,
            g, c // g, c, hw, sx_b, sx_c, sx_hw, sg_b, sg_c, sg_hw, sd_b, sd_c, sd_hw,
            sc.stride(0) if ctx.has_ss else 0, sc.stride(1) if ctx.has_ss else 0,
            HAS_SS=ctx.has_ss, ACC=acc_dtype(x.dtype), CPG_P2=cpg_p2, BLOCK_HW=block_hw, num_warps=warps,
            enable_fp_fusion=FP_FUSION,
        )
        dw = dwp.sum(0).to(weight.dtype)
        db = dbp.sum(0).to(bias.dtype)
        if ctx.has_ss:
            shape, dt = ctx.ss_shapes
            dsc, dsh = dsc.reshape(shape).to(dt), dsh.reshape(shape).to(dt)
        return dx, dw, db, dsc, dsh, None, None


# ---------------------------------------------------------------------------------------------------------------
# reference (pure PyTorch) and entry point
# ---------------------------------------------------------------------------------------------------------------


def group_norm_silu_reference(x, weight, bias, num_groups: int, eps: float = 1e-5, scale=None, shift=None):
    """silu((GN(x)·w + b)·(1 + scale) + shift), computed in fp32 (fp64 for fp64 inputs), returned in x's dtype."""
    acc = torch.promote_types(x.dtype, torch.float32)
    cast = (lambda t: None if t is None else t.to(acc))
    h = F.group_norm(x.to(acc), num_groups, cast(weight), cast(bias), eps)
    bc = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
    if scale is not None:
        h = h * (1 + scale.to(acc).reshape(bc)) + shift.to(acc).reshape(bc)
    return F.silu(h).to(x.dtype)


def group_norm_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float = 1e-5,
                    scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                    impl: str | None = None) -> torch.Tensor:
    """silu((GN(x)·w + b)·(1 + scale) + shift) of x (B, C, H, W) or (B, C, L); scale and shift are (B, C) or
    (B, C, 1, 1), both or neither. Triton on CUDA, the reference elsewhere (`kernels.dispatch`)."""
    if x.dim() not in (3, 4):
        raise ValueError(f"group_norm_silu: x must be (B, C, H, W) or (B, C, L), got shape {tuple(x.shape)}")
    b, c = x.shape[:2]
    if c % num_groups:
        raise ValueError(f"group_norm_silu: {c} channels do not split into {num_groups} groups")
    if weight is None or bias is None or weight.shape != (c,) or bias.shape != (c,):
        raise ValueError(f"group_norm_silu: weight and bias must both be ({c},) tensors")
    if (scale is None) != (shift is None):
        raise ValueError("group_norm_silu: pass scale and shift together, or neither")
    for name, t in (("scale", scale), ("shift", shift)):
        if t is not None and t.numel() != b * c:
            raise ValueError(f"group_norm_silu: {name} must hold (B, C) = ({b}, {c}) values, got {tuple(t.shape)}")
    if kernel_impl(x, impl) == "triton":
        return GroupNormSiLUFunction.apply(x, weight, bias, scale, shift, num_groups, eps)
    return group_norm_silu_reference(x, weight, bias, num_groups, eps, scale, shift)
