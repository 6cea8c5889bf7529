"""Where a joint DAA step spends its time: convolution share and the speed-up ceiling it implies.

    python launch/bench/profile_step.py              # CPU, the step benchmark's demo sizes (B=8, 64²), ~1 min
    python launch/bench/profile_step.py --batch 4 --steps 5

Profiles (torch.profiler, CPU self time per op) a few full steps — forward, backward, Adam — of the eager official
sequence (`daa.official`) and of ours (`daa.objective`), built exactly as `launch/bench/step.py` builds them. Both
forms run the same convolutions (same networks, same total batch), so convolution time is a floor that no
re-arrangement of the step can go under; `ceiling = official step time / our convolution time` bounds the speed-up
any batching/fusion of the *non-convolution* work could reach. On a GPU the picture differs (kernels overlap with
the host), so this is a CPU tool. Rows are appended to docs/benchmarks/step_profile.csv.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import launch.bench.step as bs  # noqa: E402  (shares StepRunner, sizes and CSV metadata with the step benchmark)
from launch.harness import CsvLog  # noqa: E402

# aten ops that do convolution arithmetic (forward and the input/weight gradients) on CPU back-ends
CONV_OPS = ("conv", "mkldnn_convolution", "convolution_backward", "_slow_conv2d")
CSV_FIELDS = ("timestamp", "git_sha", "device", "threads", "torch", "batch", "size", "form", "total_s", "conv_s",
              "conv_share", "ceiling")


def is_conv(name: str) -> bool:
    return any(k in name for k in CONV_OPS)


def profile_runner(runner, steps: int) -> dict[str, float]:
    """Self CPU time (s per step): total, convolution, and the largest other ops."""
    for _ in range(2):  # warm-up outside the profile (oneDNN primitive creation, allocator)
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.step()
    total = conv = 0.0
    others: dict[str, float] = {}
    for ev in prof.key_averages():
        t = ev.self_cpu_time_total / 1e6 / steps
        total += t
        if is_conv(ev.key):
            conv += t
        else:
            others[ev.key] = t
    top = sorted(others.items(), key=lambda kv: -kv[1])[:5]
    return {"total": total, "conv": conv, "top": top}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3, help="profiled steps per form")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--csv", default=str(REPO / "docs" / "benchmarks" / "step_profile.csv"))
    a = ap.parse_args(argv)
    if a.batch < 1 or a.size < 8 or a.steps < 1:
        raise SystemExit("error: --batch and --steps must be >= 1 and --size >= 8")
    log = CsvLog(a.csv, CSV_FIELDS)  # refuses (one line) a CSV of another layout before any work
    if a.threads:
        torch.set_num_threads(a.threads)
    from daa.models import build_diffusion_unet, build_restorer
    from daa.objective import DAAObjective, ObjectiveConfig

    torch.manual_seed(0)
    name, rargs = bs.DEMO_RESTORER
    restorer, denoiser = build_restorer(name, "default", **rargs), build_diffusion_unet("tiny")
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand((a.batch, 3, a.size, a.size), generator=g) for k in ("x_s", "y_s", "x_r")}
    draws = DAAObjective(restorer, denoiser, ObjectiveConfig(mode="daa")).draw(
        a.batch, (3, a.size, a.size), torch.device("cpu"), generator=g, noise_generator=g)
    res = {}
    for impl in ("official", "ours"):
        runner = bs.StepRunner(bs.Variant(impl, "fp32"), restorer, denoiser, batch, draws, torch.device("cpu"))
        res[impl] = profile_runner(runner, a.steps)
    off, ours = res["official"], res["ours"]
    ceiling = off["total"] / ours["conv"]
    print(f"joint step, fp32, B={a.batch}, {a.size}², restorer {name} {rargs}, diffusion tiny, "
          f"{torch.get_num_threads()} threads, {a.steps} profiled steps each (self CPU time per step)")
    print("| form | total (s) | convolution (s) | conv share | largest other ops (s) |")
    print("|---|---|---|---|---|")
    for impl, r in res.items():
        top = ", ".join(f"{k} {v:.3f}" for k, v in r["top"][:3])
        print(f"| {impl} | {r['total']:.3f} | {r['conv']:.3f} | {r['conv'] / r['total']:.1%} | {top} |")
    print(f"measured ratio (profiled totals) {off['total'] / ours['total']:.2f}×; ceiling for any re-arrangement "
          f"of the non-convolution work = official total / our convolution time = {ceiling:.2f}×")
    meta = dict(bs.bench_meta(torch.device("cpu")), batch=a.batch, size=a.size, ceiling=f"{ceiling:.3f}")
    log.append([dict(meta, form=impl, total_s=f"{r['total']:.4f}", conv_s=f"{r['conv']:.4f}",
                     conv_share=f"{r['conv'] / r['total']:.4f}") for impl, r in res.items()])
    print(f"rows appended to {log.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
