"""Restorer-only exports: safetensors weights + the metadata needed to rebuild the network, no DeepSpeed needed,
and an ONNX graph of the restorer for ONNX Runtime / TensorRT (`daa-export --weights W --onnx OUT.onnx`).

The metadata (JSON in the safetensors header, and in the ONNX file's metadata_props) names the restorer, its preset
and overrides, the value range it was trained in and the task, so `python -m daa.restore --weights W` needs nothing
else, for either file.

The ONNX graph maps `x` (B, 3, H, W) float32 in the value range to `restored` = x + R(x), with batch, H and W
dynamic: the pad-to-multiple of networks that downsample is part of the graph (an unconditional replicate pad by
(−H) mod m, so it traces for every size, not only the example's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import build_restorer

FORMAT = 1
ONNX_OPSET = 18  # the exported and tested one (ONNX Runtime ≥ 1.14 runs it); `daa-export --opset` picks another


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


class _Deployable(torch.nn.Module):
    """x → x + R(x) with the pad-to-multiple written without a branch on the size (Restorer.forward skips a zero
    pad with an `if`, which a trace would freeze at the example's size)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.net.size_multiple
        xp = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate") if m > 1 else x
        return x + self.net.body(xp)[..., :h, :w]


def export_onnx(net: torch.nn.Module, path: str | os.PathLike, meta: dict[str, Any],
                opset: int = ONNX_OPSET) -> Path:
    """Write `net` (a daa Restorer) as ONNX: input `x` (B, C, H, W) float32, output `restored`, batch/H/W dynamic.

    Through torch's TorchScript (tracing) exporter: seconds per network, and every restorer here exports with
    dynamic H and W. torch 2.13's torch.export-based exporter (`dynamo=True`) took minutes per network on 2 CPU
    cores and failed on restormer with dynamic H and W ("Cannot create Dim with inconsistent min=1, max=-oo").
    Atomic: temp file + rename."""
    import onnx

    path = Path(path)
    model = _Deployable(net.to("cpu", torch.float32)).eval()
    # an example size that is not a multiple of any network's size_multiple, so the traced graph holds the pad
    example = torch.rand(2, net.in_channels, 37, 45)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export",
                                DeprecationWarning)  # chosen knowingly (see above), not news to the user
        torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["restored"], dynamic_axes={"x": axes, "restored": axes})
    proto = onnx.load(str(tmp))
    onnx.helper.set_model_props(proto, {"daa": json.dumps({"format": FORMAT, **meta, "onnx_opset": opset})})
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


def read_onnx_meta(path: str | os.PathLike) -> dict[str, Any]:
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as e:  # protobuf's DecodeError and friends: one line, whatever the parser raised
        raise ValueError(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    if "daa" not in props:
        raise ValueError(f"{path}: not a daa restorer export (no 'daa' metadata)")
    return json.loads(props["daa"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a daa restorer (safetensors from training) for deployment.")
    p.add_argument("--weights", required=True, help="restorer export, e.g. runs/x/export/restorer_ema.safetensors")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    a = p.parse_args(argv)
    try:
        out = Path(a.onnx)
        if out.suffix != ".onnx":
            raise ValueError(f"--onnx must name a .onnx file, got {out}")
        if out.exists() and not a.overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite or choose another --onnx")
        try:
            net, meta = load_restorer(a.weights)
        except RuntimeError as e:  # same keys, other shapes: load_state_dict's RuntimeError
            raise ValueError(f"{a.weights}: weights do not match the restorer its metadata names "
                             f"({str(e).strip().splitlines()[-1].strip()[:160]})") from None
        export_onnx(net, out, meta, a.opset)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.weights} -> {out} (opset {a.opset}; input x (batch, {net.in_channels}, height, width) in "
          f"{meta['value_range']}, output restored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
