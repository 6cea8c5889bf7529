"""Score restored images against ground truth: `python -m daa.evaluate --pred DIR --gt DIR [--csv out.csv]`.

Files are matched by stem. PSNR/SSIM on RGB and on BT.601 Y (spec §6 protocols use one or the other per task), all
in [0,1] after reading 8/16-bit files. Prints a table (per image and mean) and optionally appends rows to a CSV.
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


def evaluate_folders(pred_dir: str, gt_dir: str) -> list[dict]:
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
        rows.append({"image": name, **{k: float(f(a, b)[0]) for k, f in METRICS.items()}})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="PSNR/SSIM (RGB and Y) of restored images against ground truth.")
    p.add_argument("--pred", required=True, help="folder of restored images")
    p.add_argument("--gt", required=True, help="folder of ground-truth images (matched by file stem)")
    p.add_argument("--csv", help="append per-image rows and the mean to this CSV")
    a = p.parse_args(argv)
    if a.csv and not Path(a.csv).resolve().parent.is_dir():  # fail before scoring, not after (issue #7)
        print(f"error: --csv {a.csv}: folder {Path(a.csv).parent} does not exist", file=sys.stderr)
        return 2
    try:
        rows = evaluate_folders(a.pred, a.gt)
    except (FileNotFoundError, ValueError, ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mean = {"image": "MEAN", **{k: float(np.mean([r[k] for r in rows])) for k in METRICS}}
    print(f"{'image':<32} {'PSNR':>8} {'SSIM':>7} {'PSNR-Y':>8} {'SSIM-Y':>7}")
    for r in rows + [mean]:
        print(f"{r['image'][:32]:<32} {r['psnr']:8.3f} {r['ssim']:7.4f} {r['psnr_y']:8.3f} {r['ssim_y']:7.4f}")
    if a.csv:
        new = not Path(a.csv).exists()
        try:
            f = open(a.csv, "a", newline="")
        except OSError as e:  # e.g. a read-only file: one line (the scores are already on stdout)
            print(f"error: cannot write --csv {a.csv}: {e.strerror}", file=sys.stderr)
            return 2
        with f:
            w = csv.DictWriter(f, fieldnames=["pred", "gt", "image", *METRICS])
            if new:
                w.writeheader()
            for r in rows + [mean]:
                w.writerow({"pred": a.pred, "gt": a.gt, **r})
    return 0


if __name__ == "__main__":
    sys.exit(main())
