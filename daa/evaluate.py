r"""Score restored images against ground truth: `daa-evaluate --pred DIR --gt DIR [--csv out.csv]`.

Files are matched by stem. PSNR/SSIM on RGB and on BT.601 Y, all in [0,1] after reading 8/16-bit files. Prints a
table (per image and mean) and optionally appends rows to a CSV. `--protocol` applies a paper's test protocol
(daa.protocols) so that the numbers compare with published ones:

    daa-evaluate --protocol sidd --pred Idenoised.mat --gt ValidationGtBlocksSrgb.mat
    daa-evaluate --protocol sidd --weights R.safetensors --input ValidationNoisyBlocksSrgb.mat \
        --gt ValidationGtBlocksSrgb.mat
    daa-evaluate --protocol realblur --pred restored/ --gt gt/        # aligned to the GT (ECC), overlap only;
                                                                      # pairs ECC cannot align are counted
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
# ssim_ch: sidd's per-channel SSIM on uint8 (not the paper's); unaligned: realblur pairs ECC could not align (MEAN
# row: their count)
CSV_FIELDS = ["pred", "gt", "protocol", "image", *METRICS, "ssim_ch", "unaligned"]


def iter_pairs(pred_dir: str, gt_dir: str):
    """(name, prediction, ground truth) in [0,1], one pair read at a time (memory bounded by one pair). The names are
    matched by stem, and a ground truth without prediction is an error, before any image is read."""
    preds = {p.stem: p for p in list_images(pred_dir)}
    gts = {p.stem: p for p in list_images(gt_dir)}
    common = sorted(set(preds) & set(gts))
    if not common:
        raise ValueError(f"no file names in common between {pred_dir} and {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise ValueError(f"{len(missing)} ground-truth images have no prediction (first: {missing[0]})")
    for name in common:
        a, b = to_float01(read_image(preds[name])), to_float01(read_image(gts[name]))
        if a.shape != b.shape:
            raise ValueError(f"{name}: prediction {a.shape[:2]} and ground truth {b.shape[:2]} differ in size")
        yield name, a, b


def evaluate_folders(pred_dir: str, gt_dir: str, metrics: dict | None = None) -> list[dict]:
    """Per image: the metrics (default: PSNR/SSIM on RGB and Y)."""
    metrics = METRICS if metrics is None else metrics
    return [{"image": name, **{k: float(f(a, b)[0]) for k, f in metrics.items()}}
            for name, a, b in iter_pairs(pred_dir, gt_dir)]


def evaluate_realblur(pred_dir: str, gt_dir: str, warp: str) -> list[dict]:
    """Per pair: PSNR/SSIM after alignment, and `unaligned` = 1 where ECC did not converge (warned on stderr)."""
    from .protocols import score_realblur

    rows = []
    for name, a, b in iter_pairs(pred_dir, gt_dir):
        r = score_realblur(a, b, warp)
        if not r["aligned"]:
            print(f"warning: {name}: ECC alignment ({warp}) did not converge; scored unaligned", file=sys.stderr)
        rows.append({"image": name, "psnr": r["psnr"], "ssim": r["ssim"], "unaligned": int(not r["aligned"])})
    return rows


def evaluate_sidd(a) -> dict:
    """SIDD blocks: scored from --pred, or restored from --input with --weights first (main checks the options)."""
    from .protocols import blocks_to_float01, load_blocks, score_sidd

    gt = load_blocks(a.gt, a.gt_key)
    if a.weights:
        import torch

        from .export import load_restorer
        from .training.evaluation import restore_batches

        noisy = blocks_to_float01(load_blocks(a.input, a.key), f"{a.input}")
        net, meta = load_restorer(a.weights, a.device)
        n, k = noisy.shape[:2]
        x = torch.from_numpy(noisy.reshape(n * k, *noisy.shape[2:])).permute(0, 3, 1, 2)
        with torch.no_grad():
            r = restore_batches(net, x, tuple(meta["value_range"]), a.device, batch=8).clamp(0, 1)
        pred = r.permute(0, 2, 3, 1).numpy().reshape(noisy.shape)  # float in [0,1], as the official Idenoised
    else:
        pred = load_blocks(a.pred, a.key)
    return score_sidd(pred, gt)


def _usage_error(a) -> str | None:
    """The one-line complaint about options that do not fit together, or None."""
    if a.protocol != "sidd":
        if a.weights or a.input:
            return f"--weights and --input apply to --protocol sidd only (got --protocol {a.protocol})"
        return None if a.pred else f"--protocol {a.protocol} needs --pred DIR"
    if a.pred and (a.weights or a.input):
        return "--protocol sidd takes either --pred BLOCKS.mat or --weights W --input NOISY.mat, not both"
    if a.weights and not a.input:
        return "--protocol sidd --weights needs --input NOISY.mat (the noisy blocks to restore)"
    if a.input and not a.weights:
        return "--protocol sidd --input needs --weights R.safetensors (the restorer to apply)"
    if not (a.pred or a.weights):
        return "--protocol sidd needs --pred BLOCKS.mat, or --weights R.safetensors and --input NOISY.mat"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", help="folder of restored images (sidd: a .mat of restored blocks)")
    p.add_argument("--gt", required=True, help="folder of ground-truth images, matched by file stem (sidd: the GT "
                   ".mat)")
    p.add_argument("--protocol", choices=("pairs", "sidd", "realblur", "spa"), default="pairs",
                   help="pairs: PSNR/SSIM on RGB and Y (default); sidd: SIDD .mat blocks scored as eva_denoise.m "
                        "(float, MATLAB psnr/ssim); realblur: ECC-aligned, overlap only; spa: Y channel")
    p.add_argument("--weights", help="sidd: restore --input with this restorer (safetensors export) first")
    p.add_argument("--input", help="sidd: the noisy blocks (.mat)")
    p.add_argument("--key", default=None, help="sidd: variable name in --pred/--input (default: the SIDD names)")
    p.add_argument("--gt-key", default=None, help="sidd: variable name in --gt")
    p.add_argument("--align", default="homography", choices=("translation", "affine", "homography"),
                   help="realblur: the ECC warp (RealBlur's evaluation: homography)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--csv", help="append per-image rows and the mean to this CSV")
    a = p.parse_args(argv)
    if a.csv and not Path(a.csv).resolve().parent.is_dir():  # fail before scoring, not after
        print(f"error: --csv {a.csv}: folder {Path(a.csv).parent} does not exist", file=sys.stderr)
        return 2
    problem = _usage_error(a)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from .protocols import ProtocolError

    try:
        if a.protocol == "sidd":
            r = evaluate_sidd(a)
            print(f"SIDD protocol: {r['blocks']} blocks, PSNR {r['psnr']:.3f} dB, SSIM {r['ssim']:.4f} "
                  f"(as eva_denoise.m: float blocks, MATLAB psnr/ssim, the paper's columns); "
                  f"SSIM-ch {r['ssim_ch']:.4f} (per-channel 2-D on uint8, not the paper's)")
            return _append_csv(a, [{"image": "MEAN", **{k: r[k] for k in ("psnr", "ssim", "ssim_ch")}}])
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
    # the MEAN row averages the scores; for `unaligned` it holds the count of pairs ECC could not align
    mean = {"image": "MEAN", **{k: (int(sum(r[k] for r in rows)) if k == "unaligned" else
                                    float(np.mean([r[k] for r in rows]))) for k in keys}}
    names = {"psnr": "PSNR", "ssim": "SSIM", "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "unaligned": "unaligned"}
    fmt = {"psnr": "8.3f", "psnr_y": "8.3f", "unaligned": "9d"}
    print(f"{'image':<32} " + " ".join(f"{names[k]:>8}" for k in keys) + f"   (protocol {a.protocol})")
    for r in rows + [mean]:
        print(f"{r['image'][:32]:<32} " + " ".join(format(r[k], fmt.get(k, "8.4f")) for k in keys))
    if "unaligned" in keys:
        n = mean["unaligned"]
        print(f"ECC alignment did not converge on {n} of {len(rows)} pairs" + (" (scored unaligned)" if n else ""))
    return _append_csv(a, rows + [mean])


def _header(path: str) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), None) or CSV_FIELDS


def _append_csv(a, rows: list[dict]) -> int:
    if not a.csv:
        return 0
    new = not Path(a.csv).exists() or Path(a.csv).stat().st_size == 0
    try:
        f = open(a.csv, "a", newline="")
    except OSError as e:  # e.g. a read-only file: one line (the scores are already on stdout)
        print(f"error: cannot write --csv {a.csv}: {e.strerror}", file=sys.stderr)
        return 2
    with f:
        fields = CSV_FIELDS if new else _header(a.csv)
        dropped = sorted({k for r in rows for k in r} - set(fields))
        if dropped:  # an older file: keep it readable (its own columns), but say what it cannot hold
            print(f"warning: --csv {a.csv} has no column {', '.join(dropped)} (an older file); left out, "
                  "use a new file to keep them", file=sys.stderr)
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"pred": a.pred or a.input, "gt": a.gt, "protocol": a.protocol, **r})
    return 0


if __name__ == "__main__":
    sys.exit(main())
