"""Launch helpers shared by the kernels of this package (one op per module; what they share lives here)."""
from __future__ import annotations

import os

import torch
import triton.language as tl

# Read once: `@triton.jit` itself decides interpreter vs native when the kernels are defined (module import), so a
# later change of the variable could not switch the kernels anyway. Saves an os.environ lookup per launch.
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


# (BLOCK, num_warps) forced for every launch on a GPU; only `python -m launch.bench.kernels --sweep` sets it.
BENCH_OVERRIDE: tuple[int, int] | None = None
_GPU_SETTINGS = (1024, 4)

# Passed to every launch whose result is floating point: a·b + c contracted to one FMA (one rounding, not two). The
# tolerances of the kernel tests and the benchmarked numerics are for fused code; Triton's default for this option
# is its own and changes between releases (TRITON_DEFAULT_FP_FUSION), so the kernels do not rely on it.
FP_FUSION = True


def elementwise_settings(n: int, device: torch.device) -> tuple[int, int]:
    """(BLOCK, num_warps) of a 1-D elementwise launch over n elements (fixed, no autotune; style §3 item 4).

    Under the CPU interpreter each program costs ~1 ms whatever its size, so one big block (≤ 64Ki) is best; on a GPU
    1024-element blocks with 4 warps keep the loads 16-byte vectorised and the grid large enough to fill every SM.
    Plain integer math on the host (`triton.next_power_of_2` / `triton.cdiv` are constexpr functions that cost
    several µs per call outside a kernel).
    """
    if device.type != "cuda" or _INTERPRET:
        return min(1 << (max(n, 1) - 1).bit_length(), 1 << 16), 4
    if BENCH_OVERRIDE is not None:
        return BENCH_OVERRIDE
    return _GPU_SETTINGS


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for positive ints (host side; see `elementwise_settings`)."""
    return -(-a // b)


def contiguous(t: torch.Tensor) -> torch.Tensor:
    """t itself when already contiguous (no dispatcher call), else a contiguous copy."""
    return t if t.is_contiguous() else t.contiguous()


def acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def seed_arg(seed: int) -> int:
    """Philox takes the seed as a 64-bit unsigned key; fold any Python int into [0, 2**63) for a stable int64 arg."""
    return int(seed) % (1 << 63)
