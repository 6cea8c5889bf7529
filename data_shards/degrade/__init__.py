"""Paired degradation synthesis for DAA-mini: one entry point, `degrade`, over 3 tasks x 2 domains.

The source domain is the naive synthesis the paper trains on (AWGN, linear motion blur, Rain100L-like streaks); the
target domain is a camera-physics synthesis that stands in for real data (Brooks et al. 2019 camera noise,
Boracchi-Foi shake with RSBlur-style image formation, layered screen-blended rain). See notes/data.md §2-§3.2.

Images are float32 HxWx3 RGB in [0,1]; every random draw comes from the caller's `np.random.Generator`, so a seed fixes
the output. Source AWGN may leave [0,1] (the paper does not clip); every other output is clipped to [0,1].
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .blur import camera_shake_blur, linear_motion_blur
from .noise import awgn, camera_noise
from .rain import rain100l, realistic_rain

TASKS: tuple[str, ...] = ("denoise", "deblur", "derain")
DOMAINS: tuple[str, ...] = ("source", "target")

_REGISTRY: dict[tuple[str, str], Callable[..., tuple[np.ndarray, dict]]] = {
    ("denoise", "source"): awgn,
    ("denoise", "target"): camera_noise,
    ("deblur", "source"): linear_motion_blur,
    ("deblur", "target"): camera_shake_blur,
    ("derain", "source"): rain100l,
    ("derain", "target"): realistic_rain,
}


def degrade(
    img: np.ndarray, task: str, domain: str, rng: np.random.Generator, **overrides
) -> tuple[np.ndarray, dict]:
    """Degrade `img` (float32 HxWx3 in [0,1]) for `task` in TASKS and `domain` in DOMAINS.

    `overrides` go to the family's function (e.g. sigma=0.1 for source noise, haze=True for target rain). Returns the
    float32 HxWx3 output and a JSON-serialisable dict: the degradation's "name" and every drawn parameter."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(DOMAINS)}")
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    out, params = _REGISTRY[(task, domain)](img.astype(np.float32, copy=False), rng, **overrides)
    return out.astype(np.float32, copy=False), {"task": task, "domain": domain, **params}


__all__ = ["DOMAINS", "TASKS", "degrade"]
