"""Seeded diffusion noise: regenerate ε from an integer seed, and the fused noise-MSE loss that never stores ε.

The condition builder (`kernels.conditions`) can draw ε in-kernel instead of reading a noise tensor:

    ε[i] = tl.randn(seed, i)          i = flat index of the element in the (B, 3, H, W) noise tensor

(Philox-4x32-10 keyed by the 64-bit seed, counter = (i_lo, i_hi, 0, 0); Box-Muller on the first two words; this is
Triton's own `tl.randn`). The losses need the same ε back. Two ways, both here:

* `regenerate_noise(seed, shape)`: writes ε (Triton kernel, or `philox_randn_reference`, a bit-compatible
  pure-PyTorch Philox so that the CPU fallback draws the same numbers up to the last ulp of log/cos);
* `noise_mse(eps_hat, seed=..., groups=2)`: the per-group MSE ``d_g = mean((ε̂_g − ε)²)`` of the U-Net's
  (G·B, 3, H, W) prediction against ε, with ε regenerated inside both the forward and the backward kernel.
  G = 2 gives ``(d_pos, d_neg)`` of spec §2.3 in one pass over ε̂ (ε is drawn once per element and shared by both
  groups); G = 1 is the `daa_ref` mode. A noise tensor can be passed instead of a seed.

Byte model of `noise_mse` (N = B·3·H·W elements of ε, s = element size of ε̂, G groups):
    fwd: read G·N·s (ε̂) [+ N·s_ε if ε is read]                        seeded, G=2: 2Ns
    bwd: read G·N·s, write G·N·s [+ N·s_ε]                             seeded, G=2: 4Ns
Against `F.mse_loss(ε̂_pos, ε) + F.mse_loss(ε̂_neg, ε)` (reads 2N·s + 2N·s_ε forward, and in backward reads
ε twice more), seeding saves every ε read and the N·s_ε write of `torch.randn_like`.

Gradients flow to ε̂ only; ε is sampled (no gradient, asserted).

Measured (H200, B=32, 512², bf16): with ε read, fwd 0.057 ms (62 % of copy bandwidth), bwd 0.154 ms; seeded, fwd is
compute-bound on Philox (0.148 ms), so reading ε is the default (see kernels/conditions.py).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import kernel_impl
from .utils import FP_FUSION, acc_dtype, cdiv, contiguous, elementwise_settings, seed_arg


@triton.jit
def _regenerate_noise_kernel(out_ptr, seed, N, BLOCK: tl.constexpr):
    """out[i] = tl.randn(seed, i) for i < N. Writes N elements, reads nothing."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tl.store(out_ptr + offs, tl.randn(seed, offs), mask=mask)


@triton.jit
def _noise_mse_fwd_kernel(
    eh_ptr,  # ε̂, (G·N,) contiguous
    noise_ptr,  # ε, (N,), unused when SEEDED
    seed,  # Philox seed, used when SEEDED
    partial_ptr,  # (G, n_programs) fp32/fp64 partial sums
    N,  # elements per group (B·3·H·W)
    n_prog,
    G: tl.constexpr,
    SEEDED: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for fp64 inputs
    BLOCK: tl.constexpr,
):
    """partial[g, p] = Σ_{i in block p} (ε̂[g·N + i] − ε[i])². Reads G·N ε̂ (+ N ε unless SEEDED)."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    if SEEDED:
        eps = tl.randn(seed, offs).to(ACC)
    else:
        eps = tl.load(noise_ptr + offs, mask=mask, other=0.0).to(ACC)
    for g in tl.static_range(G):
        eh = tl.load(eh_ptr + g * N + offs, mask=mask, other=0.0).to(ACC)
        d = tl.where(mask, eh - eps, 0.0)
        tl.store(partial_ptr + g * n_prog + pid, tl.sum(d * d, axis=0))


@triton.jit
def _noise_mse_bwd_kernel(
    eh_ptr,
    noise_ptr,
    seed,
    gd_ptr,  # (G,) upstream gradient of each group's mean
    grad_ptr,  # (G·N,) output, dtype of ε̂
    N,
    G: tl.constexpr,
    SEEDED: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """grad[g·N + i] = 2·gd[g]/N · (ε̂[g·N + i] − ε[i]). Reads G·N ε̂ (+ N ε), writes G·N."""
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    if SEEDED:
        eps = tl.randn(seed, offs).to(ACC)
    else:
        eps = tl.load(noise_ptr + offs, mask=mask, other=0.0).to(ACC)
    for g in tl.static_range(G):
        scale = tl.load(gd_ptr + g).to(ACC) * 2.0 / N
        eh = tl.load(eh_ptr + g * N + offs, mask=mask, other=0.0).to(ACC)
        tl.store(grad_ptr + g * N + offs, scale * (eh - eps), mask=mask)


# ---------------------------------------------------------------------------------------------------------------
# launch wrappers
# ---------------------------------------------------------------------------------------------------------------


def regenerate_noise_triton(seed: int, shape, device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    out = torch.empty(shape, device=device, dtype=dtype)
    n = out.numel()
    block, warps = elementwise_settings(n, out.device)
    _regenerate_noise_kernel[(cdiv(n, block),)](out, seed_arg(seed), n, BLOCK=block, num_warps=warps,
                                                enable_fp_fusion=FP_FUSION)
    return out


def _noise_mse_fwd(eh, noise, seed, groups):
    n = eh.numel() // groups
    block, warps = elementwise_settings(n, eh.device)
    n_prog = cdiv(n, block)
    acc = torch.float64 if eh.dtype == torch.float64 else torch.float32
    partial = torch.empty(groups, n_prog, device=eh.device, dtype=acc)
    seeded = noise is None
    _noise_mse_fwd_kernel[(n_prog,)](
        eh, eh if seeded else noise, seed_arg(seed) if seeded else 0, partial, n, n_prog,
        G=groups, SEEDED=seeded, ACC=acc_dtype(eh.dtype), BLOCK=block, num_warps=warps, enable_fp_fusion=FP_FUSION,
    )
    return partial.sum(1).div_(n)


def _noise_mse_bwd(eh, noise, seed, groups, grad_d):
    n = eh.numel() // groups
    block, warps = elementwise_settings(n, eh.device)
    grad = torch.empty_like(eh)
    seeded = noise is None
    gd = contiguous(grad_d.to(torch.float64 if eh.dtype == torch.float64 else torch.float32))
    _noise_mse_bwd_kernel[(cdiv(n, block),)](
        eh, eh if seeded else noise, seed_arg(seed) if seeded else 0, gd, grad, n,
        G=groups, SEEDED=seeded, ACC=acc_dtype(eh.dtype), BLOCK=block, num_warps=warps, enable_fp_fusion=FP_FUSION,
    )
    return grad


class NoiseMSEFunction(torch.autograd.Function):
    """Fused per-group noise MSE; see the module docstring. Inputs are made contiguous (a copy if they are not)."""

    @staticmethod
    def forward(ctx, eps_hat, noise, seed, groups):
        eh = contiguous(eps_hat)
        nz = None if noise is None else contiguous(noise)
        out = _noise_mse_fwd(eh, nz, seed, groups)
        ctx.save_for_backward(*((eh,) if nz is None else (eh, nz)))
        ctx.seed, ctx.groups, ctx.has_noise = seed, groups, nz is not None
        return out

    @staticmethod
    def backward(ctx, grad_d):
        if ctx.has_noise:
            eh, nz = ctx.saved_tensors
        else:
            (eh,), nz = ctx.saved_tensors, None
        return _noise_mse_bwd(eh, nz, ctx.seed, ctx.groups, grad_d), None, None, None


# ---------------------------------------------------------------------------------------------------------------
# references (pure PyTorch) and entry points
# ---------------------------------------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF
_PHILOX_KEY_A, _PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
_PHILOX_ROUND_A, _PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57


def _mul32(a: int, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of a·c for a 32-bit constant a and uint32 values c held in int64 (no overflow)."""
    lo = a * (c & 0xFFFF)  # < 2**48
    hi = a * (c >> 16)  # < 2**48
    low = (lo + ((hi & 0xFFFF) << 16)) & _M32
    high = (hi + (lo >> 16)) >> 16
    return high, low


def philox_randn_reference(seed: int, numel: int, device=None) -> torch.Tensor:
    """Pure-PyTorch copy of Triton's `tl.randn(seed, arange(numel))` (Philox-4x32-10 + Box-Muller), fp32.

    The Philox words are bit-identical to Triton's; the Box-Muller log/cos may differ in the last ulps from the GPU's
    fast-math versions (|Δ| ≲ 1e-5).
    """
    seed = seed_arg(seed)
    offs = torch.arange(numel, dtype=torch.int64, device=device)
    c0, c1 = offs & _M32, (offs >> 32) & _M32
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    for _ in range(10):
        hi_b, lo_b = _mul32(_PHILOX_ROUND_B, c2)
        hi_a, lo_a = _mul32(_PHILOX_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _PHILOX_KEY_A) & _M32, (k1 + _PHILOX_KEY_B) & _M32

    def uniform(x):  # uint32 → int32 bitcast → fold negatives → [0, 1) in fp32, as triton's uint_to_uniform_float
        x = torch.where(x >= (1 << 31), x - (1 << 32), x)
        x = torch.where(x < 0, -x - 1, x)
        return x.to(torch.float32) * torch.tensor(4.6566127342e-10, dtype=torch.float32, device=x.device)

    u1 = torch.clamp_min(uniform(c0), 1.0e-7)
    th = torch.tensor(6.283185307179586, dtype=torch.float32, device=u1.device) * uniform(c1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(th)


def regenerate_noise(seed: int, shape, device=None, dtype: torch.dtype = torch.float32, impl: str | None = None):
    """ε of `shape` drawn from `seed` exactly as the seeded condition builder draws it (element i = randn(seed, i))."""
    shape = tuple(shape)
    probe = torch.empty(0, device=device)
    if kernel_impl(probe, impl) == "triton":
        return regenerate_noise_triton(seed, shape, probe.device, dtype)
    n = 1
    for s in shape:
        n *= s
    return philox_randn_reference(seed, n, probe.device).reshape(shape).to(dtype)


def noise_mse_reference(eps_hat: torch.Tensor, noise: torch.Tensor, groups: int) -> torch.Tensor:
    """(G,) per-group means of (ε̂_g − ε)², computed in fp32 (fp64 for fp64 inputs)."""
    acc = torch.promote_types(eps_hat.dtype, torch.float32)
    d = eps_hat.to(acc).reshape(groups, -1) - noise.to(acc).reshape(1, -1)
    return (d * d).mean(1)


def noise_mse(
    eps_hat: torch.Tensor,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    groups: int | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Per-group noise MSE: `eps_hat` is (G·B, 3, H, W); ε is `noise` (B, 3, H, W) or regenerated from `seed`.

    Returns a (G,) fp32 tensor (fp64 for fp64 inputs); with G = 2, ``d_pos, d_neg = noise_mse(...)``.
    """
    if (noise is None) == (seed is None):
        raise ValueError("noise_mse needs exactly one of noise (a tensor) or seed (an int)")
    if noise is not None:
        if noise.requires_grad:
            raise ValueError("noise_mse: the noise is sampled and takes no gradient; pass noise.detach()")
        if eps_hat.shape[0] % noise.shape[0] or eps_hat.shape[1:] != noise.shape[1:]:
            raise ValueError(f"noise_mse: eps_hat {tuple(eps_hat.shape)} is not G copies of noise {tuple(noise.shape)}")
        g = eps_hat.shape[0] // noise.shape[0]
        if groups is not None and groups != g:
            raise ValueError(f"noise_mse: groups={groups} but eps_hat holds {g} copies of the noise batch")
        groups = g
    elif groups is None or groups < 1 or eps_hat.shape[0] % groups:
        raise ValueError(f"noise_mse: with a seed, groups must divide the batch {eps_hat.shape[0]}, got {groups}")
    if kernel_impl(eps_hat, impl) == "triton":
        return NoiseMSEFunction.apply(eps_hat, noise, seed, groups)
    if noise is None:
        noise = regenerate_noise(seed, (eps_hat.shape[0] // groups, *eps_hat.shape[1:]), eps_hat.device, impl="torch")
    return noise_mse_reference(eps_hat, noise, groups)
