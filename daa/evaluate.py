r"""Score restored images against ground truth: `daa-evaluate --pred DIR --gt DIR [--csv out.csv]`.

Files are matched by stem. PSNR/SSIM on RGB and on BT.601 Y, all in [0,1] after reading 8/16-bit files. Prints a
table (per image and mean) and optionally appends rows to a CSV. `--protocol` applies a paper's test protocol
(daa.protocols) so that the numbers compare with published ones:

    daa-evaluate --protocol sidd --pred Idenoised.mat --gt ValidationGtBlocksSrgb.mat
    daa-evaluate --protocol sidd --weights R.safetensors --input ValidationNoisyBlocksSrgb.mat \
        --gt ValidationGtBlocksSrgb.mat
    daa-evaluate --protocol realblur --pred restored/ --gt gt/        # aligned to the GT (ECC), overlap only
    daa-evaluate --protocol spa --pred restored/ --gt gt/             # Y channel
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from data_shards.imageio import ImageError, list_images, read_image, to_float01

from .metrics import psnr, psnr_y, ssim, ssim_y

METRICS = {"psnr": psnr, "ssim": ssim, "psnr_y": psnr_y, "ssim_y": ssim_y}


def evaluate_folders(pred_dir: str, gt_dir: str, metrics: dict | None = None) -> list[dict]:
    """Per image: the metrics (default: PSNR/SSIM on RGB and Y); with metrics={} the images themselves (_pred, _gt)."""
    metrics = METRICS if metrics is None else metrics
    preds = {p.stem: p for p in list_images(pred_dir)}
    gts = {p.stem: p for p in list_images(gt_dir)}
    common = sorted(set(preds) & set(gts))
    if not common:
        raise ValueError(f"no file names in common between {pred_dir} and {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise ValueError(f"{len(missing)} ground-truth images have no prediction (first: {missing[0]})")
    rows = []
    for name in common:
        a, b = to_float01(read_image(preds[name])), to_float01(read_image(gts[name]))
        if a.shape != b.shape:
            raise ValueError(f"{name}: prediction {a.shape[:2]} and ground truth {b.shape[:2]} differ in size")
        rows.append({"image": name, **({k: float(f(a, b)[0]) for k, f in metrics.items()} if metrics else
                                        {"_pred": a, "_gt": b})})
    return rows


def evaluate_realblur(pred_dir: str, gt_dir: str, warp: str) -> list[dict]:
    from .protocols import score_realblur

    rows = []
    for name, a, b in _pairs(pred_dir, gt_dir):
        r = score_realblur(a, b, warp)
        rows.append({"image": name, "psnr": r["psnr"], "ssim": r["ssim"]})
    return rows


def _pairs(pred_dir: str, gt_dir: str):
    for row in evaluate_folders(pred_dir, gt_dir, metrics={}):
        yield row["image"], row["_pred"], row["_gt"]


def evaluate_sidd(a) -> dict:
    """SIDD blocks: scored from --pred, or restored from --input with --weights first."""
    from .protocols import ProtocolError, load_blocks, score_sidd

    gt = load_blocks(a.gt, a.gt_key)
    if a.weights:
        import torch

        from .export import load_restorer
        from .training.evaluation import restore_batches

        net, meta = load_restorer(a.weights, a.device)
        noisy = load_blocks(a.input, a.key)
        n, k = noisy.shape[:2]
        x = torch.from_numpy(noisy.reshape(n * k, *noisy.shape[2:]).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            r = restore_batches(net, x, tuple(meta["value_range"]), a.device, batch=8).clamp(0, 1)
        pred = r.permute(0, 2, 3, 1).numpy().reshape(noisy.shape)  # float in [0,1], as the official Idenoised
    elif a.pred:
        pred = load_blocks(a.pred, a.key)
    else:
        raise ProtocolError("--protocol sidd needs --pred BLOCKS.mat, or --weights and --input NOISY.mat")
    return score_sidd(pred, gt)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", help="folder of restored images (sidd: a .mat of restored blocks)")
    p.add_argument("--gt", required=True, help="folder of ground-truth images, matched by file stem (sidd: the GT "
                   ".mat)")
    p.add_argument("--protocol", choices=("pairs", "sidd", "realblur", "spa"), default="pairs",
                   help="pairs: PSNR/SSIM on RGB and Y (default); sidd: per-block uint8 scores of SIDD .mat blocks; "
                        "realblur: ECC-aligned, overlap only; spa: Y channel")
    p.add_argument("--weights", help="sidd: restore --input with this restorer (safetensors export) first")
    p.add_argument("--input", help="sidd: the noisy blocks (.mat)")
    p.add_argument("--key", default=None, help="sidd: variable name in --pred/--input (default: the SIDD names)")
    p.add_argument("--gt-key", default=None, help="sidd: variable name in --gt")
    p.add_argument("--align", default="homography", choices=("translation", "affine", "homography"),
                   help="realblur: the ECC warp (RealBlur's evaluation: homography)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--csv", help="append per-image rows and the mean to this CSV")
    a = p.parse_args(argv)
    if a.csv and not Path(a.csv).resolve().parent.is_dir():  # fail before scoring, not after (issue #7)
        print(f"error: --csv {a.csv}: folder {Path(a.csv).parent} does not exist", file=sys.stderr)
        return 2
    if a.protocol != "sidd" and not a.pred:
        print(f"error: --protocol {a.protocol} needs --pred DIR", file=sys.stderr)
        return 2
    from .protocols import ProtocolError

    try:
        if a.protocol == "sidd":
            r = evaluate_sidd(a)
            print(f"SIDD protocol: {r['blocks']} blocks, PSNR {r['psnr']:.3f} dB, SSIM {r['ssim']:.4f} "
                  "(uint8 RGB per block, averaged)")
            return _append_csv(a, [{"image": "MEAN", "psnr": r["psnr"], "ssim": r["ssim"]}])
        if a.protocol == "realblur":
            rows = evaluate_realblur(a.pred, a.gt, a.align)
        else:
            rows = evaluate_folders(a.pred, a.gt)
            if a.protocol == "spa":
                rows = [{"image": r["image"], "psnr_y": r["psnr_y"], "ssim_y": r["ssim_y"]} for r in rows]
    except (FileNotFoundError, ValueError, ImageError, ProtocolError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = [k for k in rows[0] if k != "image"]
    mean = {"image": "MEAN", **{k: float(np.mean([r[k] for r in rows])) for k in keys}}
    names = {"psnr": "PSNR", "ssim": "SSIM", "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y"}
    print(f"{'image':<32} " + " ".join(f"{names[k]:>8}" for k in keys) + f"   (protocol {a.protocol})")
    for r in rows + [mean]:
        print(f"{r['image'][:32]:<32} " + " ".join(f"{r[k]:8.3f}" if "psnr" in k else f"{r[k]:8.4f}" for k in keys))
    return _append_csv(a, rows + [mean])


def _append_csv(a, rows: list[dict]) -> int:
    if not a.csv:
        return 0
    new = not Path(a.csv).exists()
    try:
        f = open(a.csv, "a", newline="")
    except OSError as e:  # e.g. a read-only file: one line (the scores are already on stdout)
        print(f"error: cannot write --csv {a.csv}: {e.strerror}", file=sys.stderr)
        return 2
    with f:
        w = csv.DictWriter(f, fieldnames=["pred", "gt", "protocol", "image", *METRICS], extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"pred": a.pred or a.input, "gt": a.gt, "protocol": a.protocol, **r})
    return 0


if __name__ == "__main__":
    sys.exit(main())
