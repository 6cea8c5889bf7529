"""Restore images with an exported restorer: `python -m daa.restore --weights W --input DIR --output DIR`.

W is the safetensors export of training or its ONNX graph from `daa-export --onnx` (run with ONNX Runtime on CPU).

Any size (large images are processed in overlapping tiles, blended with linear ramps), 8/16-bit PNG/JPEG in,
PNG out at the input's bit depth. Only the restorer is used (spec §2.6); nothing is ever overwritten without
--overwrite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from data_shards.imageio import ImageError, from_float01, list_images, read_image, to_float01, write_png

from .export import load_restorer, read_onnx_meta


class OnnxRestorer:
    """An ONNX export (`daa-export --onnx`) behind the residual contract of a Restorer: net(x) = R(x)."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.meta = read_onnx_meta(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xn = x.detach().to("cpu", torch.float32).contiguous().numpy()
        restored = self.session.run(["restored"], {"x": xn})[0]
        return torch.from_numpy(restored).to(x) - x  # the graph returns x + R(x)


def load_any(path: str, device: str):
    """(net, meta) for a .onnx export (ONNX Runtime, CPU) or a safetensors export (PyTorch on `device`)."""
    if str(path).endswith(".onnx"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        net = OnnxRestorer(path)
        return net, net.meta
    try:
        return load_restorer(path, device)
    except RuntimeError as e:  # same keys, other shapes (another width/depth): load_state_dict's RuntimeError
        raise ValueError(f"{path}: weights do not match the restorer its metadata names "
                         f"({str(e).strip().splitlines()[-1].strip()[:160]})") from None


def _ramp(n: int, overlap: int, lo_edge: bool, hi_edge: bool) -> torch.Tensor:
    w = torch.ones(n)
    if overlap > 0:
        r = torch.linspace(0, 1, overlap + 2)[1:-1]
        if not lo_edge:
            w[:overlap] = r
        if not hi_edge:
            w[-overlap:] = r.flip(0)
    return w


@torch.no_grad()
def restore_image(net, img: torch.Tensor, tile: int = 512, overlap: int = 32) -> torch.Tensor:
    """x + R(x) for one (3, H, W) image already in the model's value range; tiled when larger than `tile`."""
    _, h, w = img.shape
    if h <= tile and w <= tile:
        x = img[None]
        return (x + net(x))[0]
    if overlap * 2 >= tile:
        raise ValueError(f"tile overlap {overlap} must be less than half the tile size {tile}")
    out = torch.zeros_like(img)
    weight = torch.zeros(1, h, w, dtype=img.dtype, device=img.device)
    step = tile - overlap
    ys = list(range(0, max(h - tile, 0) + 1, step)) or [0]
    xs = list(range(0, max(w - tile, 0) + 1, step)) or [0]
    if ys[-1] + tile < h:
        ys.append(h - tile)
    if xs[-1] + tile < w:
        xs.append(w - tile)
    for y0 in ys:
        for x0 in xs:
            patch = img[:, y0:y0 + tile, x0:x0 + tile][None]
            res = (patch + net(patch))[0]
            th, tw = res.shape[1:]
            wy = _ramp(th, overlap, y0 == 0, y0 + th >= h).to(img)
            wx = _ramp(tw, overlap, x0 == 0, x0 + tw >= w).to(img)
            m = wy[:, None] * wx[None, :]
            out[:, y0:y0 + th, x0:x0 + tw] += res * m
            weight[:, y0:y0 + th, x0:x0 + tw] += m
    return out / weight


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Restore images with a daa restorer export (safetensors or ONNX).")
    p.add_argument("--weights", required=True, help="restorer export, e.g. runs/x/export/restorer_ema.safetensors, "
                   "or its .onnx from daa-export (ONNX Runtime, CPU)")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="output folder (PNG files, same names)")
    p.add_argument("--tile", type=int, default=512, help="tile size for large images (default 512)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    a = p.parse_args(argv)
    try:
        if a.tile < 16 or a.overlap < 0 or 2 * a.overlap >= a.tile:
            raise ValueError(f"need --tile >= 16 and 0 <= --overlap < tile/2, got {a.tile}, {a.overlap}")
        net, meta = load_any(a.weights, a.device)
        lo, hi = meta["value_range"]
        files = list_images(a.input)
        out_dir = Path(a.output)
        targets = [out_dir / (f.stem + ".png") for f in files]
        clash = [t for t in targets if t.exists()]
        if clash and not a.overwrite:
            raise FileExistsError(f"{clash[0]} already exists ({len(clash)} outputs would be replaced); "
                                  f"pass --overwrite or choose another --output")
        for f, t in zip(files, targets):
            arr = read_image(f)
            x = torch.from_numpy(to_float01(arr)).permute(2, 0, 1).to(a.device) * (hi - lo) + lo
            y = (restore_image(net, x, a.tile, a.overlap) - lo) / (hi - lo)
            write_png(t, from_float01(y.permute(1, 2, 0).cpu().numpy(), 16 if arr.dtype == np.uint16 else 8))
            print(f"{f} -> {t}")
    except (FileNotFoundError, FileExistsError, ValueError, ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
