"""Step-speed levers: each a `run.*` switch that changes kernels, layouts or launch overhead but not the
maths — tests/test_levers.py checks loss and gradients within tolerance on CPU; launch/bench/step.py
(`--trainer-set run.X=…`) measures them.

- `run.channels_last`: every input batch in channels_last memory format, so the convolutions run NHWC and the
  activations stay NHWC (the weights keep their layout: DeepSpeed's ZeRO keeps them as views of flat buffers);
- `run.compile`: `networks` = torch.compile of each network; `blocks` = regional compile of every ResBlock and
  attention block of ε_θ and of the restorer as a whole (one compiled graph per block kind and shape: small
  graphs, short compile, and it leaves DeepSpeed's hooks between the blocks, so it works under ZeRO ≤ 2);
- `run.cudnn_benchmark`: cuDNN picks the fastest convolution algorithm per shape (CUDA; off in deterministic mode);
- `data.pin_memory` (default: on CUDA): the loader hands over page-locked batches, so the host→device copies the
  trainer issues with `non_blocking=True` overlap with compute;
- `model.diffusion_args={norm: native}` (daa/models/diffusion_unet.py): GroupNorm without the fp32 round trip;
- `model.diffusion_args={norm: fused}`: GroupNorm + the ResBlock's scale/shift + SiLU as one Triton kernel on CUDA
  (kernels/group_norm_silu.py), for when compile does not fuse these chains; with `run.compile` the op runs between
  the compiled graphs. On CPU it runs its eager reference.
"""
from __future__ import annotations

import os

import torch
from torch import nn

COMPILE_MODES = ("none", "networks", "blocks")
COMPILE_BACKEND_ENV = "DAA_COMPILE_BACKEND"
"""torch.compile backend (default inductor); the CPU tests use aot_eager: the same graph capture and autograd,
without minutes of C++ code generation."""


def apply_levers(objective: nn.Module, compile_mode: str) -> nn.Module:
    """Apply the compile lever to a DAAObjective in place (before DeepSpeed wraps it). channels_last is applied to
    the inputs only (to_layout): converting the parameters would break ZeRO's flat-buffer views."""
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"run.compile must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
    nets = [m for m in (objective.restorer, getattr(objective, "denoiser", None)) if m is not None]
    kw = {"backend": os.environ.get(COMPILE_BACKEND_ENV, "inductor")}
    if compile_mode == "networks":
        for m in nets:
            m.compile(**kw)
    elif compile_mode == "blocks":
        from ..models.diffusion_unet import AttentionBlock, ResBlock

        # every ResBlock shares one code object: one graph per (channels, size) it meets, so allow enough of them
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        objective.restorer.compile(**kw)
        if getattr(objective, "denoiser", None) is not None:
            for m in objective.denoiser.modules():
                if isinstance(m, (ResBlock, AttentionBlock)):
                    m.compile(**kw)
    return objective


def to_layout(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t
