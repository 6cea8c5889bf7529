"""Benchmark of the fused GroupNorm + scale/shift + SiLU (`python -m launch.bench.kernels.group_norm_silu`).

Shapes: the chain as ε_θ runs it at the paper's sizes — a diffusion batch of 2·B (positive + negative conditions),
one shape per U-Net level (64 ch at 128², 128 at 64², 256 at 32², 512 at 16²), with the ResBlock's (2B, C) scale and
shift. Providers:
    triton      kernels/group_norm_silu.py (norm='fused')
    official    guided-diffusion under bf16: GroupNorm32 (upcast, norm, downcast), ·(1 + scale) + shift, x·sigmoid(x)
    native      F.group_norm in the input dtype, ·(1 + scale) + shift, F.silu (norm='native')
    compile     torch.compile of `native` (what run.compile=blocks can fuse inside a ResBlock)
Modes fwd and fwd+bwd (the gradient of x, weight, bias, scale and shift). Wall time from `time_fn`, GPU busy time
from `device_times` (launch/bench/kernels/timing.py, L2 flushed); GB/s from the minimal traffic of the fused op
(fwd: read + write N elements; fwd+bwd: 5N), %copy against a device copy in the same run. On CPU only `official`
and `native` eager run (the Triton interpreter is not a speed tool), so the table there holds ratios only.
Rows go to --csv (default docs/benchmarks/group_norm_silu.csv).
"""
from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import torch
import torch.nn.functional as F

from kernels.group_norm_silu import group_norm_silu
from launch.harness import CsvLog, git_sha

from .timing import copy_bandwidth, device_times, time_fn

REPO = Path(__file__).resolve().parents[3]
FIELDS = ("timestamp", "git_sha", "device", "torch", "triton", "mode", "provider", "dtype", "N", "C", "H", "W",
          "ms_p50", "dev_ms", "gbps", "dev_gbps", "pct_copy", "dev_pct_copy", "x_vs_official", "dev_x_vs_official")
LEVELS = ((64, 128), (128, 64), (256, 32), (512, 16))  # (channels, side) of each level of the paper's ε_θ at 128²
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def official(x, w, b, sc, sh):
    h = F.group_norm(x.float(), 32, w.float(), b.float(), 1e-5).to(x.dtype)
    h = h * (1 + sc[..., None, None]) + sh[..., None, None]
    return h * torch.sigmoid(h)


def native(x, w, b, sc, sh):
    h = F.group_norm(x, 32, w.to(x.dtype), b.to(x.dtype), 1e-5)
    return F.silu(h * (1 + sc[..., None, None]) + sh[..., None, None])


def fused(x, w, b, sc, sh):
    return group_norm_silu(x, w, b, 32, 1e-5, sc, sh, impl="triton")


# default dynamic: the second shape recompiles once with symbolic sizes. dynamic=False would compile each of the
# 8 (level, dtype) shapes apart, spending the GPU slot on compiles and reaching dynamo's recompile limit (8)
_COMPILED = torch.compile(native)
PROVIDERS = {"triton": fused, "official": official, "native": native, "compile": _COMPILED}


def make_call(fn, mode, n, c, s, dtype, device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, c, s, s, device=device, dtype=dtype, generator=g).requires_grad_(True)
    w = (1 + 0.1 * torch.randn(c, device=device, generator=g)).to(dtype).requires_grad_(True)
    b = (0.1 * torch.randn(c, device=device, generator=g)).to(dtype).requires_grad_(True)
    sc = (0.1 * torch.randn(n, c, device=device, generator=g)).to(dtype).requires_grad_(True)
    sh = (0.1 * torch.randn(n, c, device=device, generator=g)).to(dtype).requires_grad_(True)
    gy = torch.randn_like(x)
    if mode == "fwd":
        return lambda: fn(x, w, b, sc, sh)
    return lambda: torch.autograd.grad(fn(x, w, b, sc, sh), (x, w, b, sc, sh), gy)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=None, help="B of the training step (diffusion batch 2B); "
                    "default 24 on CUDA, 2 on CPU")
    ap.add_argument("--dtypes", default=None, help="comma list of bf16,fp32 (default CUDA both, CPU fp32)")
    ap.add_argument("--csv", default=str(REPO / "docs" / "benchmarks" / "group_norm_silu.csv"))
    ap.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    bsz = args.batch or (24 if cuda else 2)
    dtypes = (args.dtypes or ("bf16,fp32" if cuda else "fp32")).split(",")
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise SystemExit(f"error: --dtypes: unknown {','.join(bad)} (choose from {', '.join(DTYPES)})")
    providers = list(PROVIDERS) if cuda else ["official", "native"]
    log = CsvLog(args.csv, FIELDS)
    import triton

    name = torch.cuda.get_device_name() if cuda else "cpu"
    base = dict(timestamp=_dt.datetime.now().isoformat(timespec="seconds"), git_sha=git_sha(dirty=True),
                device=name, torch=torch.__version__, triton=triton.__version__)
    copy_wall, copy_dev = copy_bandwidth(device)
    print(f"# {name}, diffusion batch N = 2B = {2 * bsz}; copy {copy_wall:.0f} GB/s wall"
          + (f", {copy_dev:.0f} GB/s device" if copy_dev else ""))
    head = f"{'mode':8} {'dtype':5} {'C':>4} {'HxW':>7} " + " ".join(f"{p:>18}" for p in providers)
    print(head + "\n" + "-" * len(head))
    rows = []
    for dt in dtypes:
        for mode in ("fwd", "fwd+bwd"):
            for c, s in LEVELS:
                n = 2 * bsz
                calls = [make_call(PROVIDERS[p], mode, n, c, s, DTYPES[dt], device) for p in providers]
                wall = [time_fn(f, device, args.quick)[0] for f in calls]
                dev = device_times(calls, device)
                nbytes = n * c * s * s * DTYPES[dt].itemsize * (2 if mode == "fwd" else 5)
                off = providers.index("official")
                cells = []
                for p, ms, dms in zip(providers, wall, dev):
                    gbps = nbytes / ms / 1e6
                    dgbps = nbytes / dms / 1e6 if dms else None
                    rows.append(dict(base, mode=mode, provider=p, dtype=dt, N=n, C=c, H=s, W=s, ms_p50=f"{ms:.4f}",
                                     dev_ms=f"{dms:.4f}" if dms else "", gbps=f"{gbps:.1f}",
                                     dev_gbps=f"{dgbps:.1f}" if dgbps else "",
                                     pct_copy=f"{100 * gbps / copy_wall:.1f}",
                                     dev_pct_copy=f"{100 * dgbps / copy_dev:.1f}" if dgbps and copy_dev else "",
                                     x_vs_official=f"{wall[off] / ms:.2f}",
                                     dev_x_vs_official=f"{dev[off] / dms:.2f}" if dms and dev[off] else ""))
                    cells.append(f"{ms:7.3f}" + (f" {dms:6.3f}d {dev[off] / dms:4.2f}x" if dms and dev[off]
                                                 else f" {wall[off] / ms:5.2f}x"))
                print(f"{mode:8} {dt:5} {c:4d} {s:>3}x{s:<3} " + " ".join(f"{x:>18}" for x in cells), flush=True)
    log.append(rows)
    print(f"# ms wall p50 [device ms, x vs official by device time on CUDA]; {len(rows)} rows -> {log.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
