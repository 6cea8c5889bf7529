"""DAA-mini's scoring (used by launch/studies/daa_mini.py): a trained restorer, or the degraded input itself, on a
task's fixed target and source splits (data_shards.valset), with the per-crop PSNRs the per-photo tables group."""
from __future__ import annotations

import json
import threading
from pathlib import Path

_EVAL_LOCK = threading.Lock()
PSNR_CAP = 60.0
"""Per-image PSNR is capped here: a source-test crop drawn with σ≈0 is its own clean image (PSNR = ∞), which would
make the input row's mean infinite. 60 dB is above what a 1-LSB error in every 8-bit pixel gives (58.9 dB)."""


def _psnr(pred, target):
    import numpy as np

    from daa import metrics

    return np.minimum(metrics.psnr(pred, target), PSNR_CAP)


def evaluate_split(net, meta, split: Path, domain: str, y_metric: bool) -> dict:
    import numpy as np

    from daa import metrics
    from daa.training.evaluation import restore_batches
    from data_shards.valset import load_valset

    x, y = load_valset(str(split), domain=domain)
    r = restore_batches(net, x, tuple(meta["value_range"]), "cpu", batch=8).clamp(0, 1)
    out = {"psnr": _psnr(r, y).tolist(), "ssim": metrics.ssim(r, y).tolist()}
    if y_metric:
        out["psnr_y"] = metrics.psnr_y(r, y).tolist()
    return {k: float(np.mean(v)) for k, v in out.items()} | {"psnr_each": out["psnr"], "n": len(x)}


def evaluate_run(run_dir: Path, paths: dict[str, Path], split: str, y_metric: bool) -> dict:
    import torch

    from daa.export import load_restorer

    with _EVAL_LOCK:  # evaluation is short; one at a time keeps the training slot's core free
        torch.set_num_threads(1)
        net, meta = load_restorer(run_dir / "export" / "restorer_ema.safetensors")
        with torch.no_grad():
            return {"target": evaluate_split(net, meta, paths[split], "target", y_metric),
                    "source": evaluate_split(net, meta, paths[f"source_{split}"], "source", y_metric)}


def input_result(paths: dict[str, Path], split: str, y_metric: bool) -> dict:
    import numpy as np

    from daa import metrics
    from data_shards.valset import load_valset

    res = {}
    for key, sp, domain in (("target", paths[split], "target"), ("source", paths[f"source_{split}"], "source")):
        x, y = load_valset(str(sp), domain=domain)
        each = _psnr(x, y)
        d = {"psnr": float(np.mean(each)), "ssim": float(np.mean(metrics.ssim(x, y))), "n": len(x),
             "psnr_each": each.tolist()}
        if y_metric:
            d["psnr_y"] = float(np.mean(metrics.psnr_y(x, y)))
        res[key] = d
    return res


def split_photos(split: Path) -> list[str]:
    """The photo each crop of a valset split was cut from, in the split's order (its manifest)."""
    return [it.get("name", "?") for it in json.loads((split / "manifest.json").read_text())["items"]]


def roundtrip_each(paths: dict[str, Path], split: str) -> list[float] | None:
    """Per crop of a camera-noise split: PSNR of the camera's noise-free rendering against the photo (its `*_cam`
    variant holds both), i.e. what scoring against the photo charges a perfect denoiser; None if not written."""
    cam = paths.get(split if split.endswith("_cam") else f"{split}_cam")
    if cam is None or not (cam / "manifest.json").is_file():
        return None
    from data_shards.valset import load_valset

    _, ref = load_valset(str(cam), domain="target")
    _, photo = load_valset(str(cam), domain="source")
    return _psnr(ref, photo).tolist()
