"""Where a trainer step's GPU time goes, by kernel category.

    python launch/bench/profile_gpu.py --out $OUT/step_profile_gpu          # CUDA: paper sizes, bf16, B=24
    python launch/bench/profile_gpu.py --device cpu --size 32 --batch 2 --restorer-args '{"depth": 2, "wf": 8}' \
        --diffusion-preset tiny                                             # CPU smoke run (CPU ops instead)

Profiles (torch.profiler) a few `Trainer.train_step` calls — the DeepSpeed engine, EMA and host syncs as users run
them (launch/bench/step_runners.TrainerRunner) — after warm-up, and sums the device time of every kernel, memcpy and
memset into categories by name: convolution (cuDNN / implicit GEMM / Winograd, forward and both gradients), matmul
(the Linear layers and attention's projections), attention (fused attention kernels), norm + elementwise
(GroupNorm, SiLU, scale/shift, dropout, casts, additions, reductions), optimizer (Adam and its foreach/multi-tensor
kernels, ZeRO's flattening), copies (memcpy/memset, host↔device), other. "Idle" is the wall time of the profiled
steps during which no kernel ran on the device: host overhead, syncs and launch gaps. Writes OUT.md and OUT.json.
`--trainer-set KEY=VALUE` profiles a lever (e.g. run.compile=blocks).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CATEGORIES = (
    ("copies", r"memcpy|memset|copy_|_to_copy|dtoh|htod|dtod"),
    ("optimizer", r"adam|multi_tensor|foreach|_fused_adam|flatten|unflatten"),
    ("attention", r"fmha|flash|attention|sdpa|efficient_attention|cutlass.*attn"),
    ("convolution", r"conv|cudnn|implicit_gemm|xmma_fprop|xmma_dgrad|xmma_wgrad|winograd|dgrad|wgrad|fprop|"
                    r"mkldnn_convolution|convolution_backward"),
    ("matmul", r"gemm|matmul|addmm|\bmm\b|bmm|linear|cublas|ampere_|sm90_xmma_gemm"),
    ("norm + elementwise", r"norm|moments|elementwise|vectorized|reduce|silu|sigmoid|mul|add|sub|div|dropout|"
                           r"where|cast|fill|cat|index|upsample|avg_pool|pad|relu|sqrt|exp|neg|clamp|triton"),
)


def category(name: str) -> str:
    n = name.lower()
    for cat, pat in CATEGORIES:
        if re.search(pat, n):
            return cat
    return "other"


def busy_union(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals (device time during which some kernel ran)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def summarize(events: list[tuple[str, float, float]], wall_us: float, steps: int) -> dict:
    """events: (name, start µs, duration µs) of device work; returns ms per step by category, idle and total."""
    by: dict[str, float] = {}
    for name, _, dur in events:
        c = category(name)
        by[c] = by.get(c, 0.0) + dur
    busy = busy_union([(s, s + d) for _, s, d in events])
    per = {k: v / 1e3 / steps for k, v in sorted(by.items(), key=lambda kv: -kv[1])}
    return {"ms_per_step": per, "busy_ms": busy / 1e3 / steps, "wall_ms": wall_us / 1e3 / steps,
            "idle_ms": max(wall_us - busy, 0.0) / 1e3 / steps}


def device_events(prof, cuda: bool) -> list[tuple[str, float, float]]:
    out = []
    for e in prof.events():
        dev = getattr(e, "device_type", None)
        is_dev = str(dev).endswith("CUDA") if cuda else (getattr(e, "cpu_parent", None) is None)
        if is_dev and e.time_range.elapsed_us() > 0:
            out.append((e.name, float(e.time_range.start), float(e.time_range.elapsed_us())))
    return out


def main(argv=None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from launch.bench.step_runners import TrainerRunner, Variant
    from launch.harness import git_sha

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default=None, help="bf16 (CUDA default) or fp32 (CPU default)")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--restorer", default="unet")
    ap.add_argument("--restorer-preset", default="default")
    ap.add_argument("--restorer-args", default="{}")
    ap.add_argument("--diffusion-preset", default="default")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--trainer-set", dest="trainer_sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    a = ap.parse_args(argv)
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no GPU is visible")
    a.restorer_args_dict = json.loads(a.restorer_args)
    precision = a.precision or ("bf16" if cuda else "fp32")
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(a.batch, 3, a.size, a.size, generator=g) for k in ("x_s", "y_s", "x_r")}
    with tempfile.TemporaryDirectory() as tmp:
        runner = TrainerRunner(Variant("trainer", precision), a, batch, a.batch, tmp, torch.device(a.device))
        for _ in range(a.warmup):
            runner.step()
        if cuda:
            torch.cuda.synchronize()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            for _ in range(a.steps):
                runner.step()
            if cuda:
                torch.cuda.synchronize()
            wall_us = (time.perf_counter() - t0) * 1e6
    res = summarize(device_events(prof, cuda), wall_us, a.steps)
    dev = torch.cuda.get_device_name() if cuda else "cpu"
    head = (f"trainer step, {precision}, B={a.batch}, {a.size}², restorer {a.restorer} {a.restorer_args_dict or ''}, "
            f"diffusion {a.diffusion_preset}, levers {a.trainer_sets or 'none'}; {dev}, torch {torch.__version__}, "
            f"sha {git_sha()}; {a.steps} profiled steps")
    lines = [f"# {head}", "", "| category | ms / step | share of the wall time |", "|---|---|---|"]
    for k, v in res["ms_per_step"].items():
        lines.append(f"| {k} | {v:.2f} | {v / res['wall_ms']:.1%} |")
    lines.append(f"| idle (no kernel running) | {res['idle_ms']:.2f} | {res['idle_ms'] / res['wall_ms']:.1%} |")
    lines.append(f"| **wall** | {res['wall_ms']:.2f} | images/s {a.batch / (res['wall_ms'] / 1e3):.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not cuda:
        print("(CPU: 'device' work is the top-level CPU ops; categories and idle are only meaningful on a GPU)")
    if a.out:
        Path(a.out + ".md").write_text(text)
        Path(a.out + ".json").write_text(json.dumps({"header": head, **res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
