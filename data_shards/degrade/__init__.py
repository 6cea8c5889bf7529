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


TARGET_PROFILES: dict[str, dict[str, dict]] = {
    "denoise": {
        "default": {},
        # Camera noise calibrated on real sRGB noise (docs/RESULTS.md, "noise statistics"; measured with
        # `python -m data_shards.noise_stats`): Brooks unprocessing + the chroma noise reduction and sharpening every
        # camera ISP runs, stored losslessly (SIDD's sRGB images are PNG). Its lag-1 autocorrelation (0.50 vs 0.45),
        # high-band power (0.41 vs 0.44) and chroma share (0.37 vs 0.41) are within 0.05 of the real SIDD crops; the
        # default profile (JPEG q 60-90) is blotchy low-frequency colour noise instead (0.70 / 0.21 / 0.46).
        "sidd": {"jpeg_enabled": False, "chroma_blur": 0.8, "sharpen": 1.2, "shot_range": (1.5e-3, 1.5e-2)},
        # The same camera pipeline in dimmer light (more shot noise, read noise following it): where an AWGN-trained
        # restorer leaves more for a target-trained one to take (headroom for adaptation to show). Input PSNR
        # against the camera's own rendering, pool-V crops: sidd 23.8 dB, sidd-dim ≈ 19, sidd-dark ≈ 15.
        "sidd-dim": {"jpeg_enabled": False, "chroma_blur": 0.8, "sharpen": 1.2, "shot_range": (5e-3, 2e-2)},
        "sidd-dark": {"jpeg_enabled": False, "chroma_blur": 0.8, "sharpen": 1.2, "shot_range": (1.5e-2, 4e-2)},
    },
    "deblur": {"default": {}},
    "derain": {"default": {}},
}
"""Named variants of a task's target degradation (parameter overrides of its function); 'default' = no override."""


def target_profile(task: str, profile: str | None) -> dict:
    """The overrides of a named target profile; a one-line ValueError names the valid ones."""
    profiles = TARGET_PROFILES.get(task, {"default": {}})
    name = profile or "default"
    if name not in profiles:
        raise ValueError(f"unknown target profile {name!r} for task {task}; valid: {', '.join(profiles)}")
    return dict(profiles[name])


def degrade(
    img: np.ndarray, task: str, domain: str, rng: np.random.Generator, profile: str | None = None, **overrides
) -> tuple[np.ndarray, dict]:
    """Degrade `img` (float32 HxWx3 in [0,1]) for `task` in TASKS and `domain` in DOMAINS.

    `profile` names a TARGET_PROFILES entry (target domain only); `overrides` go to the family's function on top
    (e.g. sigma=0.1 for source noise, haze=True for target rain). Returns the float32 HxWx3 output and a
    JSON-serialisable dict: the degradation's "name" and every drawn parameter."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(DOMAINS)}")
    if domain == "target":
        overrides = {**target_profile(task, profile), **overrides}
    elif profile not in (None, "default"):
        raise ValueError(f"target profile {profile!r} given for the source domain")
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    out, *ref, params = _REGISTRY[(task, domain)](img.astype(np.float32, copy=False), rng, **overrides)
    return (out.astype(np.float32, copy=False), *ref, {"task": task, "domain": domain, **params})


REFERENCES: tuple[str, ...] = ("photo", "camera")
"""What a target pair's clean image is. `photo`: the photo that was degraded. `camera`: the camera's noise-free
rendering of it (camera noise only: ISP of the noise-free mosaic), as in real noisy/clean pairs."""


def degrade_pair(
    img: np.ndarray, task: str, domain: str, rng: np.random.Generator, profile: str | None = None,
    reference: str = "photo", **overrides
) -> tuple[np.ndarray, np.ndarray, dict]:
    """`degrade` plus the pair's clean image (`reference`, see REFERENCES): (degraded, clean, params). The degraded
    image is the same for every reference (same random draws)."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)}")
    if reference == "photo":
        out, params = degrade(img, task, domain, rng, profile, **overrides)
        return out, np.asarray(img, dtype=np.float32), params
    if (task, domain) != ("denoise", "target"):
        raise ValueError(f"reference 'camera' is defined for the camera-noise target only, not {task}/{domain}")
    out, ref, params = degrade(img, task, domain, rng, profile, return_reference=True, **overrides)
    return out, ref, params


__all__ = ["DOMAINS", "REFERENCES", "TARGET_PROFILES", "TASKS", "degrade", "degrade_pair", "target_profile"]
