"""`make demo`: the main job on bundled data, end to end on a CPU in about 15 minutes.

1. gathers the offline photo corpus (photos bundled in pip wheels, plus Debian wallpaper photos where apt works),
2. writes small webdataset shards for denoising: clean pool-S crops (AWGN added on the fly, the paper's source) and
   pool-U crops with realistic camera noise (the "real" target stand-in), and a fixed held-out target test split,
3. trains `baseline` and `daa` with launch/configs/demo.yaml on 2 CPU ranks (DeepSpeed ZeRO-2) via torchrun,
4. evaluates both EMA restorers on the held-out split and prints input / baseline / DAA PSNR and SSIM,
5. writes runs/demo/samples.png (degraded | baseline | DAA | clean) and runs/demo/loss_curves.png.

Everything is cached: a rerun skips finished steps and resumes interrupted training. Options: --quick (a few
hundred images, a smoke test), --ranks N, --out DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sh(cmd: list[str], **env) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, **env})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_data(data: Path, quick: bool) -> tuple[Path, Path]:
    py = sys.executable
    photos, shards, val = data / "photos", data / "demo" / "shards", data / "demo" / "val"
    sh([py, "-m", "data_shards.photos", "--out", str(photos)])
    if not (shards / "manifest.json").is_file():
        sh([py, "-m", "data_shards.write", "--corpus", str(photos), "--task", "denoise", "--out", str(shards),
            "--syn-on-the-fly", "--tile", "96", "--crops-per-image", "16" if quick else "64", "--seed", "0", "-q"])
    if not (val / "manifest.json").is_file():
        sh([py, "-m", "data_shards.valset", "--corpus", str(photos), "--task", "denoise", "--out", str(val),
            "--seed", "0"])
    return shards, val


def train(mode: str, out: Path, shards: Path, val: Path, ranks: int, quick: bool) -> Path:
    run_dir = out / mode
    sets = [f"objective.mode={mode}", f"run.run_dir={run_dir}", f"data.shards={shards}", f"data.val={val}"]
    if quick:
        sets += ["run.total_images=320", "run.log_every_images=64", "run.eval_every_images=320",
                 "run.ckpt_every_images=320", "objective.alpha_ramp_images=160", "data.val_limit=16"]
    args = [a for s in sets for a in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
           str(free_port()), "launch/train.py", "--config", "demo", *args]
    t0 = time.time()
    sh(cmd, OMP_NUM_THREADS="1", TMPDIR=str(out))
    print(f"{mode}: trained in {time.time() - t0:.0f}s", flush=True)
    return run_dir


def report(out: Path, runs: dict[str, Path], val: Path) -> None:
    import numpy as np

    from daa import metrics
    from daa.export import load_restorer
    from daa.training.evaluation import restore_batches, save_grid
    from data_shards.valset import load_valset

    x, y = load_valset(str(val))
    rows, restored = {}, {}
    rows["input (degraded)"] = (float(np.mean(metrics.psnr(x, y))), float(np.mean(metrics.ssim(x, y))))
    for mode, run_dir in runs.items():
        net, meta = load_restorer(run_dir / "export" / "restorer_ema.safetensors")
        r = restore_batches(net, x, tuple(meta["value_range"]), "cpu").clamp(0, 1)
        restored[mode] = r
        rows[mode] = (float(np.mean(metrics.psnr(r, y))), float(np.mean(metrics.ssim(r, y))))
    print(f"\nHeld-out target-domain test split (realistic camera noise, {len(x)} crops of "
          f"{x.shape[-2]}x{x.shape[-1]}):")
    print(f"{'':24} {'PSNR (dB)':>10} {'SSIM':>8}")
    for name, (p, s) in rows.items():
        print(f"{name:24} {p:10.2f} {s:8.4f}")
    print("(A few thousand images of a tiny model on 2 CPU cores: this shows the pipeline end to end, not the paper's"
          " claim;\n the reproduction study with equal budgets, 3 seeds and an oracle is launch/daa_mini.py.)")
    (out / "results.json").write_text(json.dumps({k: {"psnr": v[0], "ssim": v[1]} for k, v in rows.items()},
                                                 indent=2))
    # samples: degraded | baseline | daa | clean
    save_grid(out / "samples.png", x, restored["baseline"], restored["daa"], y, n=4)
    plot_losses(out, runs)
    print(f"\nwrote {out / 'samples.png'} (degraded | baseline | DAA | clean), {out / 'loss_curves.png'}, "
          f"{out / 'results.json'}")


def plot_losses(out: Path, runs: dict[str, Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for mode, run_dir in runs.items():
        stats = [json.loads(s) for s in (run_dir / "stats.jsonl").read_text().splitlines()]
        tr = [s for s in stats if "loss" in s]
        axes[0].plot([s["kimg"] for s in tr], [s["pix"] for s in tr], label=f"{mode}: Charbonnier")
        if mode != "baseline":
            axes[0].plot([s["kimg"] for s in tr], [s["noise"] for s in tr], "--", label=f"{mode}: L_noise")
        ev = [s for s in stats if "val/psnr" in s]
        axes[1].plot([s["kimg"] for s in ev], [s["val/psnr"] for s in ev], "o-", label=mode)
    axes[0].set(xlabel="kimg", ylabel="loss", yscale="log", title="training losses")
    axes[1].set(xlabel="kimg", ylabel="PSNR (dB)", title="EMA restorer on the held-out target split")
    for a in axes:
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run of a few hundred images")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default=".data")
    a = p.parse_args(argv)
    out = ROOT / a.out if not Path(a.out).is_absolute() else Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    shards, val = prepare_data(ROOT / a.data if not Path(a.data).is_absolute() else Path(a.data), a.quick)
    runs = {m: train(m, out, shards, val, a.ranks, a.quick) for m in ("baseline", "daa")}
    report(out, runs, val)
    print(f"demo finished in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
