"""Condition builder of the DAA step: noise addition + channel shuffle + residual swap in one op (spec §2.3).

Inputs per batch of B: clean target y (B,3,H,W) (synthetic GT, or the unpaired reference for `daa_ref`), degraded
inputs x_s, x_r and restorer residuals r_s, r_r (B,3,H,W), per-sample ᾱ (B,), a positive swap mask (B,) and
optionally a negative swap mask (B,), and the noise ε (B,3,H,W) — or an integer seed from which ε is drawn in-kernel.

    ỹ   = √ᾱ·y + √(1−ᾱ)·ε
    ŷ_s = x_s + r_s,  ŷ_r = x_r + r_r                       (restored outputs)
    n_s = x_s + r_r,  n_r = x_r + r_s                       (residual-swapped negatives)
    pos = [ỹ, m ? ŷ_r : ŷ_s, m ? ŷ_s : ŷ_r]                 (channel shuffle = per-sample swap of the two slots)
    neg = [ỹ, m' ? n_r : n_s, m' ? n_s : n_r]               (independent mask m')
    cond = [pos; neg]  (2B, 9, H, W)   — or just pos (B, 9, H, W) when no negative mask is given

Returns (cond, ŷ_s). ŷ_s feeds the pixel loss; ŷ_r is reachable only through cond, which is all the losses need.

Backward (g = grad of cond, per sample: ỹ block g0, slots gA, gB; ⁺ positive, ⁻ negative; g_ŷs = grad of ŷ_s):

    g_ŷs = g_ŷs + (m ? gB⁺ : gA⁺),   g_ŷr = m ? gA⁺ : gB⁺,   g_ns = m' ? gB⁻ : gA⁻,   g_nr = m' ? gA⁻ : gB⁻
    ∂r_s = g_ŷs + g_nr,   ∂r_r = g_ŷr + g_ns,   ∂x_s = g_ŷs + g_ns,   ∂x_r = g_ŷr + g_nr,   ∂y = √ᾱ·(g0⁺ + g0⁻)

ᾱ, the masks and ε are sampled, not learned: they get no gradient (a noise tensor that requires grad is refused).

Minimal byte model (Triton path). A "plane" is B·H·W elements, so one (B,3,H,W) tensor is 3 planes and cond with
negatives is 18; multiply by the element size (per-sample scalars ᾱ, m, m' are O(B) and left out):

    mode                       reads                                   writes                   total
    fwd                        y,x_s,x_r,r_s,r_r,ε = 18                cond 18 + ŷ_s 3 = 21     39 planes
    fwd, seeded ε              y,x_s,x_r,r_s,r_r   = 15                21                       36
    fwd, no negatives          18 (seeded 15)                          cond 9 + ŷ_s 3 = 12      30 (27)
    bwd, training (grad r only) cond slot grads 12 + g_ŷs 3 = 15       ∂r_s, ∂r_r = 6           21
    bwd, every input           cond grads 18 + g_ŷs 3 = 21             ∂r ×2, ∂x ×2, ∂y = 15    36
    fwd+bwd, training          33 (seeded 30)                          27                       60 (57)

The fused kernels move exactly these bytes: each input element is read once, each output written once, nothing
intermediate touches memory. The official eager sequence (`launch.bench.kernels.official_conditions`) moves ≈177 planes
forward (q_sample 21, two adds 18, two clones 12, masked swaps ≈12, the same 42 again for the negatives, two channel
cats 36, the batch cat 36), ≈4.5× the fused 39.

Notes on the Triton path
* fp32 math inside (fp64 if any input is fp64, so gradcheck works), one rounding to each output's dtype: cond takes
  the promoted dtype of (y, x_s, x_r, r_s, r_r), ŷ_s that of (x_s, r_s), every gradient its input's dtype. The
  reference rounds ŷ/ỹ to the narrower input dtype first, so the two agree to one ulp of the output dtype.
* Non-contiguous inputs are accepted; the wrapper calls `.contiguous()` on them (a copy, outside the byte model).
* r_s and r_r that are the two halves of one contiguous (2B,3,H,W) tensor r (``r[:B]``, ``r[B:]`` or
  ``r.chunk(2)``, as the objective passes them) are detected: the op then takes r itself as its autograd input and
  writes ∂r in one (2B,3,H,W) buffer, which saves autograd's two zero-filled slice-backward buffers and their sum.
* Seeded ε: element i of the (B,3,H,W) noise is ``tl.randn(seed, i)`` (Philox); `kernels.noise_mse` regenerates
  it (`regenerate_noise`) or consumes it without storing it (`noise_mse`). The torch path draws the same numbers with
  a PyTorch copy of Philox.
* **Default: pass ε as a tensor** (``noise=torch.randn_like(y)``). Measured on an H200 (docs/benchmarks/kernels.csv,
  2026-11-27): drawing ε in this kernel changes its time by −7 % (fp32) to +1.5 % (bf16) at B=32, 512², because
  the kernel is memory-bound and Philox hides behind the loads; but `noise_mse` must then draw ε again in its
  forward and backward, where it is compute-bound (fwd 0.148 ms seeded vs 0.057 ms reading ε, bf16 B=32 512²), and
  the whole ε pipeline (randn + conditions + noise MSE, fwd+bwd) came out equal within noise. Seeding is worth it
  only to save the memory of ε. (`tl.randn` spends one Philox-4x32-10 per normal; a randn4x layout would cut that
  4×, at the price of a different element↔counter mapping.)
* Measured throughput (H200, copy_ = 4.24 TB/s read+write): fwd 4.09 TB/s (96 %), training bwd 4.20 TB/s (99 %),
  fwd+bwd 97 % at fp32 B=32 512²; 7.5× the official eager sequence and 3.5× `torch.compile` of the reference for
  fwd+bwd. Below ~32×256² the wall-clock fwd+bwd timings are host-bound (Python + autograd + launches ≈ 0.3 ms per
  fwd+bwd on that VM); `launch.bench.kernels` also reports device time (GPU busy time per call, torch.profiler), the
  figure that applies inside a training step where the CPU runs ahead. The wrapper keeps its own share small:
  contiguous inputs pass through uncopied, launch settings are plain ints, no zero-filled buffers, no host-device sync.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import kernel_impl
from .noise_mse import regenerate_noise
from .utils import FP_FUSION, acc_dtype, cdiv, contiguous, elementwise_settings, seed_arg


@triton.jit
def _store(ptr, val, mask):
    """Store with one rounding to the pointer's dtype (via fp32 unless the target is fp64)."""
    if ptr.dtype.element_ty != tl.float64:
        val = val.to(tl.float32)
    tl.store(ptr, val, mask=mask)


@triton.jit
def _sqrt(x):
    """Correctly rounded sqrt (tl.sqrt is an approximation on GPUs for fp32; fp64 sqrt is exact already)."""
    if x.dtype == tl.float64:
        r = tl.sqrt(x)
    else:
        r = tl.sqrt_rn(x)
    return r


@triton.jit
def _build_conditions_fwd_kernel(
    y_ptr, xs_ptr, xr_ptr, rs_ptr, rr_ptr,  # (B, 3, H, W) contiguous, any float dtype each
    noise_ptr,  # ε (B, 3, H, W); unused when SEEDED
    seed,  # Philox seed; used when SEEDED
    a_ptr, mp_ptr, mn_ptr,  # ᾱ (B,), positive / negative swap masks (B,), nonzero = swap
    cond_ptr,  # (2B or B, 9, H, W) output
    ys_ptr,  # ŷ_s (B, 3, H, W) output
    B, P,  # batch, elements per sample 3·H·W
    HAS_NEG: tl.constexpr,
    SEEDED: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """cond[b] = [ỹ, m?ŷ_r:ŷ_s, m?ŷ_s:ŷ_r], cond[B+b] = [ỹ, m'?n_r:n_s, m'?n_s:n_r], ŷ_s[b] = x_s+r_s.

    Grid (cdiv(P, BLOCK), B): one program per block of one sample, so the masks and ᾱ are scalars per program and
    every load/store is a contiguous run. Reads 18 planes (15 if SEEDED), writes 21 (12 without negatives).
    """
    pid = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < P
    src = b * P + offs
    a = tl.load(a_ptr + b).to(ACC)
    m = tl.load(mp_ptr + b) != 0

    y = tl.load(y_ptr + src, mask=mask, other=0.0).to(ACC)
    if SEEDED:
        eps = tl.randn(seed, src).to(ACC)
    else:
        eps = tl.load(noise_ptr + src, mask=mask, other=0.0).to(ACC)
    noisy = _sqrt(a) * y + _sqrt(1.0 - a) * eps
    xs = tl.load(xs_ptr + src, mask=mask, other=0.0).to(ACC)
    xr = tl.load(xr_ptr + src, mask=mask, other=0.0).to(ACC)
    rs = tl.load(rs_ptr + src, mask=mask, other=0.0).to(ACC)
    rr = tl.load(rr_ptr + src, mask=mask, other=0.0).to(ACC)
    ys = xs + rs
    yr = xr + rr

    dst = b * (3 * P) + offs
    _store(cond_ptr + dst, noisy, mask)
    _store(cond_ptr + dst + P, tl.where(m, yr, ys), mask)
    _store(cond_ptr + dst + 2 * P, tl.where(m, ys, yr), mask)
    _store(ys_ptr + src, ys, mask)
    if HAS_NEG:
        m2 = tl.load(mn_ptr + b) != 0
        ns = xs + rr
        nr = xr + rs
        dst_n = (B + b) * (3 * P) + offs
        _store(cond_ptr + dst_n, noisy, mask)
        _store(cond_ptr + dst_n + P, tl.where(m2, nr, ns), mask)
        _store(cond_ptr + dst_n + 2 * P, tl.where(m2, ns, nr), mask)


@triton.jit
def _build_conditions_bwd_kernel(
    gc_ptr,  # grad of cond (2B or B, 9, H, W) contiguous
    gys_ptr,  # grad of ŷ_s (B, 3, H, W)
    a_ptr, mp_ptr, mn_ptr,
    gy_ptr, gxs_ptr, gxr_ptr, grs_ptr, grr_ptr,  # outputs (B, 3, H, W), each written only if needed
    B, P,
    HAS_GC: tl.constexpr,
    HAS_GYS: tl.constexpr,
    HAS_NEG: tl.constexpr,
    NEED_Y: tl.constexpr,
    NEED_XS: tl.constexpr,
    NEED_XR: tl.constexpr,
    NEED_RS: tl.constexpr,
    NEED_RR: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Routes grad_cond (+ grad ŷ_s) back through the per-sample swaps (formulas in the module docstring).

    Reads the 4 (2 without negatives) slot-gradient blocks + g_ŷs, and the ỹ blocks only if y needs a gradient;
    writes only the gradients that are needed. Training case (only r needs grad): reads 15 planes, writes 6.
    """
    pid = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < P
    src = b * P + offs
    dst = b * (3 * P) + offs
    dst_n = (B + b) * (3 * P) + offs

    g_ys = tl.zeros([BLOCK], dtype=ACC)
    g_yr = tl.zeros([BLOCK], dtype=ACC)
    g_ns = tl.zeros([BLOCK], dtype=ACC)
    g_nr = tl.zeros([BLOCK], dtype=ACC)
    if HAS_GC:
        m = tl.load(mp_ptr + b) != 0
        ga = tl.load(gc_ptr + dst + P, mask=mask, other=0.0).to(ACC)
        gb = tl.load(gc_ptr + dst + 2 * P, mask=mask, other=0.0).to(ACC)
        g_ys = tl.where(m, gb, ga)
        g_yr = tl.where(m, ga, gb)
        if HAS_NEG:
            m2 = tl.load(mn_ptr + b) != 0
            gna = tl.load(gc_ptr + dst_n + P, mask=mask, other=0.0).to(ACC)
            gnb = tl.load(gc_ptr + dst_n + 2 * P, mask=mask, other=0.0).to(ACC)
            g_ns = tl.where(m2, gnb, gna)
            g_nr = tl.where(m2, gna, gnb)
    if HAS_GYS:
        g_ys += tl.load(gys_ptr + src, mask=mask, other=0.0).to(ACC)

    if NEED_RS:
        _store(grs_ptr + src, g_ys + g_nr, mask)
    if NEED_RR:
        _store(grr_ptr + src, g_yr + g_ns, mask)
    if NEED_XS:
        _store(gxs_ptr + src, g_ys + g_ns, mask)
    if NEED_XR:
        _store(gxr_ptr + src, g_yr + g_nr, mask)
    if NEED_Y:
        g0 = tl.zeros([BLOCK], dtype=ACC)
        if HAS_GC:
            g0 = tl.load(gc_ptr + dst, mask=mask, other=0.0).to(ACC)
            if HAS_NEG:
                g0 += tl.load(gc_ptr + dst_n, mask=mask, other=0.0).to(ACC)
        a = tl.load(a_ptr + b).to(ACC)
        _store(gy_ptr + src, _sqrt(a) * g0, mask)


# ---------------------------------------------------------------------------------------------------------------
# launch wrappers
# ---------------------------------------------------------------------------------------------------------------


def _settings(p: int, device: torch.device) -> tuple[int, int]:
    """(BLOCK, num_warps): fixed configs, no autotune. GPU: 1024 elements × 4 warps per program; `launch.bench.kernels
    --sweep` on an H200 (bf16, B=32, 512²) timed the forward within 6 % for every BLOCK in 512…4096 and warps 4/8,
    and the backward there is host-bound. CPU interpreter: one block per sample where possible (~1 ms per program)."""
    return elementwise_settings(p, device)


def _build_conditions_fwd(y, x_s, x_r, r_s, r_r, alpha_bar, swap_pos, swap_neg, noise, seed):
    """Image inputs contiguous (the Function ensures it). Returns (cond, ŷ_s); no host-device sync."""
    b, _, h, w = y.shape
    p = 3 * h * w
    has_neg = swap_neg is not None
    dev = y.device
    out_dtype = _promote(y, x_s, x_r, r_s, r_r)
    cond = torch.empty((2 * b if has_neg else b, 9, h, w), device=dev, dtype=out_dtype)
    ys_dtype = x_s.dtype if x_s.dtype is r_s.dtype else torch.promote_types(x_s.dtype, r_s.dtype)
    ys = torch.empty((b, 3, h, w), device=dev, dtype=ys_dtype)
    mp = contiguous(swap_pos)
    block, warps = _settings(p, dev)
    _build_conditions_fwd_kernel[(cdiv(p, block), b)](
        y, x_s, x_r, r_s, r_r, y if noise is None else noise, 0 if seed is None else seed_arg(seed),
        contiguous(alpha_bar), mp, contiguous(swap_neg) if has_neg else mp, cond, ys, b, p,
        HAS_NEG=has_neg, SEEDED=noise is None, ACC=acc_dtype(out_dtype), BLOCK=block, num_warps=warps,
        enable_fp_fusion=FP_FUSION,
    )
    return cond, ys


def _build_conditions_bwd(grad_cond, grad_ys, alpha_bar, swap_pos, swap_neg, shape, dtypes, device, needs):
    """needs = (y, x_s, x_r, r_s, r_r) booleans; dtypes the matching input dtypes. Returns the 5 grads or None."""
    b, _, h, w = shape
    outs = [torch.empty(shape, device=device, dtype=dt) if nd else None for nd, dt in zip(needs, dtypes)]
    return _launch_bwd(grad_cond, grad_ys, alpha_bar, swap_pos, swap_neg, outs, b, 3 * h * w, needs, dtypes)


def _launch_bwd(grad_cond, grad_ys, alpha_bar, swap_pos, swap_neg, outs, b, p, needs, dtypes):
    """One backward launch writing the needed gradients into `outs` (None where not needed). No host-device sync:
    no zero-filled buffers (a missing upstream gradient is a constexpr branch in the kernel), no `.item()`."""
    has_gc, has_gys = grad_cond is not None, grad_ys is not None
    gc = contiguous(grad_cond) if has_gc else None
    gys = contiguous(grad_ys) if has_gys else None
    any_src = gc if has_gc else gys
    dummy = next(t for t in outs if t is not None)
    mp = contiguous(swap_pos)
    acc = torch.float64 if any_src.dtype is torch.float64 or torch.float64 in dtypes else torch.float32
    block, warps = _settings(p, any_src.device)
    _build_conditions_bwd_kernel[(cdiv(p, block), b)](
        any_src if gc is None else gc, any_src if gys is None else gys, contiguous(alpha_bar), mp,
        mp if swap_neg is None else contiguous(swap_neg),
        *(dummy if t is None else t for t in outs), b, p,
        HAS_GC=has_gc, HAS_GYS=has_gys, HAS_NEG=swap_neg is not None,
        NEED_Y=needs[0], NEED_XS=needs[1], NEED_XR=needs[2], NEED_RS=needs[3], NEED_RR=needs[4],
        ACC=acc_dtype(acc), BLOCK=block, num_warps=warps, enable_fp_fusion=FP_FUSION,
    )
    return outs


_NO_GRADS = (None,) * 11


class BuildConditionsFunction(torch.autograd.Function):
    """Fused condition builder: one forward kernel, one backward kernel (see the module docstring).

    apply(y, x_s, x_r, r_s, r_r, r, alpha_bar, swap_pos, swap_neg, noise, seed):
    either r_s and r_r are given (r is None), or r is the (2B,3,H,W) tensor whose halves they are (r_s = r_r = None)
    and ∂r comes back as one tensor. Exactly one of noise / seed is given. Non-contiguous inputs are copied.

    Host side kept lean (it bounds small shapes, where the step is launch-bound): already-contiguous inputs are used
    as they are, the per-sample vectors are saved in the layout the kernels read, launch settings are plain ints, and
    neither direction syncs with the device or allocates anything but its outputs.
    """

    @staticmethod
    def forward(ctx, y, x_s, x_r, r_s, r_r, r, alpha_bar, swap_pos, swap_neg, noise, seed):
        if r is not None:
            b = y.shape[0]
            r = contiguous(r)
            r_s, r_r = r[:b], r[b:]
        else:
            r_s, r_r = contiguous(r_s), contiguous(r_r)
        y, x_s, x_r = contiguous(y), contiguous(x_s), contiguous(x_r)
        if noise is not None:
            noise = contiguous(noise)
        alpha_bar, swap_pos = contiguous(alpha_bar), contiguous(swap_pos)
        if swap_neg is not None:
            swap_neg = contiguous(swap_neg)
        cond, ys = _build_conditions_fwd(y, x_s, x_r, r_s, r_r, alpha_bar, swap_pos, swap_neg, noise, seed)
        ctx.save_for_backward(alpha_bar, swap_pos, swap_neg)
        ctx.shape, ctx.device = y.shape, y.device
        ctx.dtypes = (y.dtype, x_s.dtype, x_r.dtype, r_s.dtype, r_r.dtype)
        ctx.set_materialize_grads(False)
        return cond, ys

    @staticmethod
    def backward(ctx, grad_cond, grad_ys):
        ng = ctx.needs_input_grad  # (y, x_s, x_r, r_s, r_r, r, alpha_bar, masks, noise, seed)
        if (grad_cond is None and grad_ys is None) or not any(ng[:6]):
            return _NO_GRADS
        alpha_bar, swap_pos, swap_neg = ctx.saved_tensors
        shape, dev, dtypes = ctx.shape, ctx.device, ctx.dtypes
        b, _, h, w = shape
        if ng[5]:  # r given whole: one (2B, 3, H, W) gradient buffer, halves written by the kernel
            grad_r = torch.empty((2 * b, 3, h, w), device=dev, dtype=dtypes[3])
            outs = [torch.empty(shape, device=dev, dtype=dtypes[i]) if ng[i] else None for i in range(3)]
            outs += [grad_r[:b], grad_r[b:]]
            gy, gxs, gxr, _, _ = _launch_bwd(grad_cond, grad_ys, alpha_bar, swap_pos, swap_neg, outs, b, 3 * h * w,
                                             (ng[0], ng[1], ng[2], True, True), dtypes)
            return gy, gxs, gxr, None, None, grad_r, None, None, None, None, None
        grads = _build_conditions_bwd(grad_cond, grad_ys, alpha_bar, swap_pos, swap_neg, shape, dtypes, dev, ng[:5])
        return (*grads, None, None, None, None, None, None)


# ---------------------------------------------------------------------------------------------------------------
# reference and entry point
# ---------------------------------------------------------------------------------------------------------------


def build_conditions_reference(
    y: torch.Tensor,
    x_s: torch.Tensor,
    x_r: torch.Tensor,
    r_s: torch.Tensor,
    r_r: torch.Tensor,
    alpha_bar: torch.Tensor,
    swap_pos: torch.Tensor,
    swap_neg: torch.Tensor | None,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch definition of the op (differentiable through autograd)."""
    b = y.shape[0]
    a = alpha_bar.reshape(b, 1, 1, 1).to(torch.float32)
    noisy = (a.sqrt() * y + (1.0 - a).sqrt() * noise).to(y.dtype)
    y_s = x_s + r_s
    y_r = x_r + r_r
    m = swap_pos.reshape(b, 1, 1, 1).bool()
    pos = [noisy, torch.where(m, y_r, y_s), torch.where(m, y_s, y_r)]
    if swap_neg is None:
        return torch.cat(pos, 1), y_s
    n_s = x_s + r_r
    n_r = x_r + r_s
    m2 = swap_neg.reshape(b, 1, 1, 1).bool()
    neg = [noisy, torch.where(m2, n_r, n_s), torch.where(m2, n_s, n_r)]
    # one allocation for the (2B, 9, H, W) result: stack pos/neg along a new leading axis, then view as 2B
    cond = torch.stack([torch.cat(pos, 1), torch.cat(neg, 1)], 0).reshape(2 * b, 9, *y.shape[2:])
    return cond, y_s


def build_conditions(
    y: torch.Tensor,
    x_s: torch.Tensor,
    x_r: torch.Tensor,
    r_s: torch.Tensor,
    r_r: torch.Tensor,
    alpha_bar: torch.Tensor,
    swap_pos: torch.Tensor,
    swap_neg: torch.Tensor | None,
    noise: torch.Tensor | None,
    impl: str | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatching entry point used by the objective (see module docstring for the math).

    `noise` is ε (B,3,H,W); or pass ``noise=None, seed=<int>`` to draw ε in-kernel (element i = Philox randn(seed, i);
    `kernels.noise_mse.regenerate_noise(seed, y.shape)` / `noise_mse(..., seed=seed)` give the same ε back).
    `impl`: 'triton' | 'torch' | 'auto' (None = DAA_KERNELS, default auto = Triton on CUDA tensors).
    """
    _check_inputs(y, x_s, x_r, r_s, r_r, alpha_bar, swap_pos, swap_neg, noise, seed)
    if kernel_impl(y, impl) == "triton":
        r = _halves_of(r_s, r_r)
        if r is not None:
            return BuildConditionsFunction.apply(y, x_s, x_r, None, None, r, alpha_bar, swap_pos, swap_neg, noise,
                                                 seed)
        return BuildConditionsFunction.apply(y, x_s, x_r, r_s, r_r, None, alpha_bar, swap_pos, swap_neg, noise, seed)
    if noise is None:
        noise = regenerate_noise(seed, y.shape, y.device, impl="torch")
    return build_conditions_reference(y, x_s, x_r, r_s, r_r, alpha_bar, swap_pos, swap_neg, noise)


def _promote(*ts: torch.Tensor) -> torch.dtype:
    dt = ts[0].dtype
    for t in ts[1:]:
        if t.dtype is not dt:
            dt = torch.promote_types(dt, t.dtype)
    return dt


def _halves_of(r_s: torch.Tensor, r_r: torch.Tensor) -> torch.Tensor | None:
    """The contiguous (2B,3,H,W) tensor r if r_s is r[:B] and r_r is r[B:] (autograd views of it), else None."""
    base = r_s._base
    if base is None or r_r._base is not base or not base.requires_grad:
        return None
    if not (r_s.requires_grad and r_r.requires_grad and r_s.grad_fn is not None and r_r.grad_fn is not None):
        return None
    if base.dtype != r_s.dtype or base.shape != (2 * r_s.shape[0], *r_s.shape[1:]) or not base.is_contiguous():
        return None
    if not (r_s.is_contiguous() and r_r.is_contiguous()):
        return None
    if r_s.data_ptr() != base.data_ptr() or r_r.data_ptr() != base.data_ptr() + r_s.numel() * r_s.element_size():
        return None
    return base


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_inputs(y, x_s, x_r, r_s, r_r, alpha_bar, swap_pos, swap_neg, noise, seed=None) -> None:
    shape = y.shape
    if y.dim() != 4 or shape[1] != 3:
        raise ValueError(f"build_conditions expects y of shape (B, 3, H, W), got {tuple(shape)}")
    if (noise is None) == (seed is None):
        raise ValueError("build_conditions needs exactly one of noise (a tensor) or seed (an int)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"build_conditions: seed must be a Python int, got {type(seed).__name__}")
    dev = y.device
    images = (("x_s", x_s), ("x_r", x_r), ("r_s", r_s), ("r_r", r_r), ("noise", noise))
    if y.dtype not in _TRITON_DTYPES:
        raise ValueError(f"build_conditions: y must be float16/bfloat16/float32/float64, got {y.dtype}")
    for name, t in images:
        if t is None:
            continue
        if t.shape != shape:
            raise ValueError(f"build_conditions: {name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
        if t.dtype not in _TRITON_DTYPES:
            raise ValueError(f"build_conditions: {name} must be float16/bfloat16/float32/float64, got {t.dtype}")
        if t.device != dev:
            raise ValueError(f"build_conditions: {name} is on {t.device}, y is on {dev}")
    for name, t in (("alpha_bar", alpha_bar), ("swap_pos", swap_pos), ("swap_neg", swap_neg)):
        if t is None:
            continue
        if t.numel() != shape[0]:
            raise ValueError(f"build_conditions: {name} must have one value per sample ({shape[0]}), got {t.numel()}")
        if t.device != dev:
            raise ValueError(f"build_conditions: {name} is on {t.device}, y is on {dev}")
    for name, t in (("alpha_bar", alpha_bar), ("swap_pos", swap_pos), ("swap_neg", swap_neg), ("noise", noise)):
        if t is not None and t.requires_grad:
            raise ValueError(f"build_conditions: {name} is sampled and takes no gradient; pass {name}.detach()")
