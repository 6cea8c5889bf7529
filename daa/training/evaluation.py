"""Evaluation of a restorer on a fixed validation split, and sample grids (degraded | restored | clean)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import metrics


def to_range(x01: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    return x01 * (hi - lo) + lo


def from_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    return (x - lo) / (hi - lo)


@torch.no_grad()
def restore_batches(restorer: torch.nn.Module, degraded01: torch.Tensor, value_range, device, batch: int = 16,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Run x + R(x) over a [0,1] tensor in chunks; returns [0,1]-range float32 CPU outputs (unclamped)."""
    was_training = restorer.training
    restorer.eval()
    outs = []
    for i in range(0, len(degraded01), batch):
        x = to_range(degraded01[i:i + batch].to(device, torch.float32), value_range).to(dtype)
        y = (x + restorer(x)).float()
        outs.append(from_range(y, value_range).cpu())
    restorer.train(was_training)
    return torch.cat(outs)


def evaluate(restorer, degraded01: torch.Tensor, clean01: torch.Tensor, value_range, device,
             dtype: torch.dtype = torch.float32) -> tuple[dict[str, float], torch.Tensor]:
    """PSNR/SSIM (RGB and Y) of the restored images and of the degraded input, all in [0,1]."""
    restored = restore_batches(restorer, degraded01, value_range, device, dtype=dtype)
    out = {f"val/{k}": v for k, v in metrics.all_metrics(restored, clean01, (0.0, 1.0)).items()}
    out["val/input_psnr"] = float(np.mean(metrics.psnr(degraded01, clean01)))
    return out, restored


def save_grid(path: str | Path, *columns: torch.Tensor, n: int = 6) -> None:
    """An 8-bit PNG with one row per image (first n) and one column per tensor, e.g. degraded | restored | clean."""
    rows = [torch.cat([c[i] for c in columns], dim=2) for i in range(min(n, len(columns[0])))]
    grid = torch.cat(rows, dim=1).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
