"""Which implementation an op runs: Triton on CUDA tensors, PyTorch otherwise, or what DAA_KERNELS forces."""
from __future__ import annotations

import os

import torch

_CHOICES = ("auto", "triton", "torch")


def kernel_impl(t: torch.Tensor, override: str | None = None) -> str:
    """Return 'triton' or 'torch' for an op whose inputs live where `t` lives.

    `override` (a config field) wins over the DAA_KERNELS environment variable; both default to 'auto'.
    'triton' on CPU tensors runs only under TRITON_INTERPRET=1 (tests); otherwise Triton raises its own error.
    """
    choice = (override or os.environ.get("DAA_KERNELS", "auto")).lower()
    if choice not in _CHOICES:
        raise ValueError(f"DAA_KERNELS / kernels impl must be one of {', '.join(_CHOICES)}, got {choice!r}")
    if choice == "auto":
        return "triton" if t.is_cuda and triton_available() else "torch"
    return choice


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True
