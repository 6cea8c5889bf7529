"""Fused elementwise ops of the DAA training step. One op per module; each has a pure-PyTorch `*_reference`.

Dispatch (see `kernels.dispatch`): Triton on CUDA tensors, the reference on CPU; `DAA_KERNELS=triton|torch|auto`
forces either.
"""
from .conditions import build_conditions, build_conditions_reference

__all__ = ["build_conditions", "build_conditions_reference"]
