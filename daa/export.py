"""Restorer-only exports: safetensors weights + the metadata needed to rebuild the network, no DeepSpeed needed.

The metadata (JSON in the safetensors header) names the restorer, its preset and overrides, the value range it was
trained in and the task, so `python -m daa.restore --weights W` needs nothing else.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import build_restorer

FORMAT = 1


def save_restorer(path: str | os.PathLike, restorer: torch.nn.Module | dict[str, torch.Tensor],
                  meta: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written export behind."""
    state = restorer.state_dict() if isinstance(restorer, torch.nn.Module) else restorer
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"daa": json.dumps({"format": FORMAT, **meta})})
    os.replace(tmp, path)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if "daa" not in meta:
        raise ValueError(f"{path}: not a daa restorer export (no 'daa' metadata)")
    return json.loads(meta["daa"])


def load_restorer(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the restorer named in the export's metadata and load its weights (strict)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    meta = read_meta(path)
    net = build_restorer(meta["restorer"], meta.get("preset", "default"), init="torch", **meta.get("args", {}))
    state = load_file(str(path))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match restorer {meta['restorer']!r} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    return net.to(device).eval(), meta
