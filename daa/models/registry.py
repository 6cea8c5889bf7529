"""Name → network registry. `build_restorer("unet", preset="tiny", wf=16)` builds from a typed config.

Every restorer module registers (config dataclass, class, presets). Presets are named partial overrides of the
config defaults: "default" is the paper / reference size, "tiny" is a fast CPU size for tests and demos.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .base import kaiming_init_


@dataclass
class _Entry:
    config_cls: type
    build: Callable[[Any], nn.Module]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


_RESTORERS: dict[str, _Entry] = {}


def register_restorer(name: str, config_cls: type, presets: dict[str, dict[str, Any]] | None = None):
    """Class decorator: register a Restorer subclass whose __init__ takes one `config_cls` instance."""

    def deco(cls):
        old = _RESTORERS.get(name)
        same = old is not None and (old.build.__module__, old.build.__qualname__) == (cls.__module__, cls.__qualname__)
        if old is not None and not same:  # (a re-imported module re-registering its own class is fine)
            raise ValueError(f"restorer name {name!r} is already registered by {old.build.__module__}."
                             f"{old.build.__qualname__}; pick another name")
        _RESTORERS[name] = _Entry(config_cls, cls, {"default": {}, **(presets or {})})
        cls.name = name
        return cls

    return deco


def restorer_names() -> list[str]:
    _load_all()
    return sorted(_RESTORERS)


def make_config(config_cls: type, overrides: dict[str, Any], who: str):
    """Build a config dataclass from overrides, with a one-line error naming the valid keys on a typo."""
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{who} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(valid)}")
    return config_cls(**overrides)


def restorer_config(name: str, preset: str = "default", **overrides):
    """The resolved config dataclass for restorer `name` (preset values, then overrides)."""
    _load_all()
    if name not in _RESTORERS:
        raise ValueError(f"unknown restorer {name!r}; available: {', '.join(sorted(_RESTORERS))}")
    entry = _RESTORERS[name]
    if preset not in entry.presets:
        raise ValueError(f"restorer {name!r} has no preset {preset!r}; available: {', '.join(entry.presets)}")
    return make_config(entry.config_cls, {**entry.presets[preset], **overrides}, f"restorer {name!r}")


def build_restorer(name: str, preset: str = "default", init: str = "kaiming", **overrides) -> nn.Module:
    """Build a residual restorer by name: 'unet' (paper default), 'dncnn', 'nafnet', 'restormer'.

    init='kaiming' applies the official `init_weights` (kaiming_normal_ fan_in on conv/linear weights, zero bias,
    spec §2.5); init='identity' does the same and then zeroes the output convolution, so the residual restorer starts
    as the identity map (x + R(x) = x) instead of adding a random residual; init='torch' keeps PyTorch's default.
    """
    if init not in INITS:
        raise ValueError(f"restorer init must be one of {', '.join(INITS)}, got {init!r}")
    cfg = restorer_config(name, preset, **overrides)
    net = _RESTORERS[name].build(cfg)
    if init == "torch":
        return net
    kaiming_init_(net)
    if init == "identity":
        out = net.output_layer()
        nn.init.zeros_(out.weight)
        if out.bias is not None:
            nn.init.zeros_(out.bias)
    return net


INITS = ("kaiming", "identity", "torch")


def _load_all() -> None:
    # Importing the modules runs their @register_restorer decorators; kept lazy so `daa.models` imports fast.
    from . import dncnn, mini, nafnet, restormer, unet  # noqa: F401
