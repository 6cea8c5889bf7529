"""What every restorer shares: input checks, pad-to-multiple and crop-back, and the residual contract.

A restorer R maps a degraded image x (B, C, H, W) to a residual of the same shape; the restored image is x + R(x)
(spec §1, §3.2). Networks that downsample need H and W divisible by some power of two; instead of failing on odd
sizes we replicate-pad on the right/bottom (what the official test code does, spec §2.6) and crop the residual back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_image_batch(x: torch.Tensor, channels: int, who: str) -> None:
    """Raise a one-line ValueError unless x is a (B, channels, H, W) floating tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who} expects a 4-D (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{who} expects {channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(f"{who} expects a floating-point tensor, got {x.dtype}")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad right/bottom so H and W are multiples of `multiple`; returns (padded, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        # replicate needs pad < size on some torch versions for reflect only; replicate is safe for any size
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


class Restorer(nn.Module):
    """Base class: subclasses set `in_channels`, `out_channels`, `size_multiple`, `name` and implement `body`."""

    name: str = "restorer"
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1

    output_layer_name: str | None = None
    """Attribute name of the layer that produces the residual; None = the last convolution registered."""

    def output_layer(self) -> nn.Module:
        """The layer whose output is the residual (zeroed by init='identity')."""
        if self.output_layer_name is not None:
            return getattr(self, self.output_layer_name)
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the residual R(x) with the shape of x; restored = x + R(x)."""
        check_image_batch(x, self.in_channels, f"restorer '{self.name}'")
        xp, h, w = pad_to_multiple(x, self.size_multiple)
        r = self.body(xp)
        return r[..., :h, :w]

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """The restored image x + R(x) (what inference uses)."""
        return x + self(x)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def kaiming_init_(module: nn.Module) -> nn.Module:
    """The official `init_weights` (spec §2.5): kaiming_normal_(fan_in, a=0) on every Conv*/Linear weight, zero bias.

    Norm layers keep their defaults. Applied to both networks at train start in the official code, which also
    overwrites guided-diffusion's zero-initialised output layers (spec §10.7).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
