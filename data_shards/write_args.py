"""The command line of `python -m data_shards.write` (daa-shards): its parser and the checks that turn a bad
combination of options into one `error:` line before anything is read or written."""
from __future__ import annotations

import argparse

from .inputs import UserError

TASKS = ("denoise", "deblur", "derain")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise UserError(f"{message} (see --help)")


def cli_parser(description: str) -> argparse.ArgumentParser:
    p = _Parser(prog="python -m data_shards.write", description=description,
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  # denoising, the paper's set-up: clean DFWB tiles (AWGN added by the reader) + real SIDD crops
  python -m data_shards.write --task denoise --gt DFWB/ --syn-on-the-fly --real SIDD_train/ --tile 512 --stride 416 \\
      --tile-min 800 --out shards/denoise
  # deblurring: GoPro pairs tiled 512/256, RealBlur-J blurred inputs
  python -m data_shards.write --task deblur --syn gopro/input --gt gopro/target --real realblur_j_train.txt \\
      --tile 512 --stride 256 --out shards/deblur
  # DAA-mini from the offline corpus: 110 random 96-px crops per photo, degraded with recorded seeds
  python -m data_shards.write --corpus corpus/ --task derain --crops-per-image 110 --tile 96 --out shards/derain
  # the paper's denoising data as downloaded, first listed, then written (data_shards.datasets has every set)
  daa-shards --dataset dfwb Downloads/ --dataset sidd-medium SIDD_Medium_Srgb/ --dry-run
  daa-shards --dataset dfwb Downloads/ --dataset sidd-medium SIDD_Medium_Srgb/ --out shards/denoise""")
    src = p.add_argument_group("inputs (a folder, searched recursively, or a text file with one path per line)")
    src.add_argument("--syn", help="degraded synthetic inputs, paired with --gt")
    src.add_argument("--gt", help="clean targets of --syn (or alone with --syn-on-the-fly)")
    src.add_argument("--real", help="unpaired real degraded inputs")
    src.add_argument("--ref", help="unpaired clean references (the 'Ours-Ex' mode)")
    src.add_argument("--dataset", nargs=2, action="append", metavar=("NAME", "ROOT"),
                     help="a data set as downloaded (repeatable): sidd-medium, sidd-small, dfwb, gopro, realblur-j, "
                          "realblur-r, rain13k, spa; its files, streams and official tiling (data_shards.datasets)")
    src.add_argument("--include", action="append", default=[], metavar="GLOB",
                     help="--syn/--real: keep only files whose relative path (a glob with '/') or any name in it "
                          "(a glob without) matches; repeatable")
    src.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="--syn/--real: drop such files")
    src.add_argument("--allow-gt-names", action="store_true",
                     help="let --syn/--real hold files whose names mark them as ground truth (GT, clean, target, ...)")
    src.add_argument("--pair-by", choices=("stem", "index"), default="stem",
                     help="match --syn to --gt by relative path without extension (default) or sorted position")
    src.add_argument("--corpus", help="offline photo corpus (data_shards.corpus manifest): pools S and U")
    src.add_argument("--no-ref", action="store_true", help="--corpus: do not write the ref stream")
    src.add_argument("--target-profile", default="default",
                     help="--corpus: named variant of the target degradation (data_shards.degrade.TARGET_PROFILES; "
                          "denoise: default = camera noise + JPEG q60-90, sidd = calibrated lossless camera noise)")
    src.add_argument("--oracle", action="store_true",
                     help="--corpus: write only pool-U pairs (target-degraded input, clean gt) as the syn stream: the "
                          "crops and seeds of the real stream, for an oracle trained on the target domain")
    src.add_argument("--target-reference", choices=("photo", "camera"), default="photo",
                     help="--oracle: the pair's clean image: the photo (default), or the camera's noise-free "
                          "rendering of it (denoise: ISP of the noise-free mosaic, as in real noisy/clean pairs)")
    src.add_argument("--real-domain", choices=("target", "source"), default="target",
                     help="--corpus: how the real stream's pool-U crops are degraded: the target degradation "
                          "(default), or the source one (a placebo: the same crops and seeds, no target-domain data)")
    p.add_argument("--task", help="denoise | deblur | derain (default with --dataset: the data set's task)")
    p.add_argument("--out", help="output folder (must be empty unless --overwrite)")
    p.add_argument("--dry-run", "--list", action="store_true",
                   help="print per stream the file count, three examples, the tiles and an estimated size; write "
                        "nothing")
    p.add_argument("--syn-on-the-fly", action="store_true",
                   help="denoise only: write gt only; the reader adds AWGN per sample (the paper's DFWB set-up)")
    tl = p.add_argument_group("tiling")
    tl.add_argument("--tile", type=int, help="tile/crop size in px (default 0 = whole images; official 512; "
                                             "with --dataset any tiling option replaces every set's own)")
    tl.add_argument("--stride", type=int,
                    help="grid stride (default = --tile; DFWB 416, SIDD 384, GoPro 256)")
    tl.add_argument("--tile-min", type=int,
                    help="only tile images whose sides both exceed this (DFWB: 800; smaller ones stay whole)")
    tl.add_argument("--crops-per-image", type=int,
                    help="instead of a grid: this many seeded random --tile crops per image")
    o = p.add_argument_group("output")
    o.add_argument("--bit-depth", choices=("auto", "8", "16"), default="auto",
                   help="PNG bits per channel; auto = 16 when the source is 16-bit (corpus: 8)")
    o.add_argument("--maxcount", type=int, default=1000, help="samples per shard at most (default 1000)")
    o.add_argument("--maxsize", type=float, default=5e8, help="bytes per shard at most (default 5e8)")
    o.add_argument("--compress-level", type=int, default=6, choices=range(10), metavar="0-9", help="PNG zlib level")
    o.add_argument("--shuffle-buffer", type=int, default=256,
                   help="write samples through a seeded shuffle buffer of this many (0 = input order)")
    o.add_argument("--seed", type=int, default=0, help="seeds image order, crops and degradations")
    o.add_argument("--overwrite", action="store_true", help="replace this tool's shards and manifest in --out")
    o.add_argument("-q", "--quiet", action="store_true")
    return p


def check_args(args) -> None:
    tiling = ("tile", "stride", "tile_min", "crops_per_image")
    args.user_tiling = any(getattr(args, k) is not None for k in tiling)
    for k in tiling:
        setattr(args, k, getattr(args, k) or 0)
    if args.dataset and not args.task:
        from .datasets import recipe

        args.task = recipe(args.dataset[0][0]).task
    if not args.task:
        raise UserError("--task is required (denoise, deblur or derain) unless --dataset gives it")
    if not args.out and not args.dry_run:
        raise UserError("--out is required (or --dry-run to only list what would be written)")
    if args.dataset and args.corpus:
        raise UserError("--dataset cannot be combined with --corpus")
    if args.task not in TASKS:
        raise UserError(f"unknown task {args.task!r} (choose {', '.join(TASKS)})")
    if args.syn_on_the_fly and args.task != "denoise":
        raise UserError("--syn-on-the-fly is AWGN denoising: it needs --task denoise")
    if args.oracle and (not args.corpus or args.syn_on_the_fly):
        raise UserError("--oracle writes target-degraded pool-U pairs: it needs --corpus and no --syn-on-the-fly")
    if args.target_reference != "photo" and not (args.oracle and args.task == "denoise"):
        raise UserError("--target-reference camera sets the clean image of --oracle camera-noise pairs: it needs "
                        "--oracle and --task denoise")
    if args.real_domain != "target" and (not args.corpus or args.oracle):
        raise UserError("--real-domain chooses how --corpus pool-U crops are degraded: it needs --corpus and no "
                        "--oracle")
    if args.tile < 0 or args.stride < 0 or args.crops_per_image < 0 or args.maxcount < 1 or args.maxsize <= 0:
        raise UserError("--tile, --stride and --crops-per-image must be >= 0; --maxcount and --maxsize > 0")
    if args.crops_per_image and not args.tile:
        raise UserError("--crops-per-image needs --tile (the crop size)")
    if args.target_profile != "default":
        if not args.corpus:
            raise UserError("--target-profile chooses how --corpus photos are degraded: it needs --corpus")
        from .degrade import target_profile

        try:
            target_profile(args.task, args.target_profile)
        except ValueError as e:
            raise UserError(f"--target-profile: {e}") from None
