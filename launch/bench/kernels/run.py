"""Benchmark of the fused DAA condition builder and the seeded noise MSE (`python -m launch.bench.kernels`,
`make bench`).

Ops, modes and providers
* conditions: fwd / bwd / fwd+bwd of build_conditions with negatives (cond is (2B,9,H,W)), training case: only the
  restorer output r = cat[r_s, r_r] needs a gradient, r_s/r_r are its halves. Providers:
    triton            fused kernels, ε read from a tensor
    triton-seeded     fused kernels, ε drawn in-kernel from a seed (Philox)
    reference         `build_conditions_reference`, eager
    compile           `build_conditions_reference` under torch.compile (dynamic shapes: one compile per dtype)
    official          the straightforward port of the official code (spec §2.3), written out below
* noise_mse: (d_pos, d_neg) of the U-Net output (2B,3,H,W) against ε. Providers triton, triton-seeded, reference
  (two `F.mse_loss` on the halves, as the official loss does), compile.
* pipeline (fwd+bwd): everything ε touches in one step — `randn_like` + conditions(ε) + noise_mse(ε) against
  conditions(seed) + noise_mse(seed): the answer to "read ε or regenerate it".

Two timings of every case (GPU):
* wall (columns ms p50 [p20, p80], GB/s, %copy, x off, x cmp): `triton.testing.do_bench` — CUDA events around each
  call, L2 flushed before it. It includes the time the GPU waits for the host, so calls that go through autograd
  (Python wrapper + engine + launches, ~0.1-0.3 ms) are host-bound below ~32×256²: that is what a lone call costs.
* device (columns dev ms, dev GB/s, dev %copy, dev x off, dev x cmp): the GPU busy time of one call, from
  `torch.profiler` (CUPTI activity): the summed durations of every kernel, memcpy and memset the call launched, over
  `--dev-calls` calls (default 10) after a warm-up, divided by their number; one profiler session per input set.
  Before each call a read-only 256 MiB sweep (`_l2_flush_marker_kernel`) evicts L2 with clean lines; it is left out
  of the sum, and its launches split the device timeline into calls. Host gaps do not count: this is what the ops
  cost inside a training step, where the CPU runs ahead of the U-Net. Not available on CPU (n/a, never estimated).
GB/s come from each provider's minimal byte model (module docstrings of kernels/conditions.py and
kernels/noise_mse.py), %copy is that against the device-to-device copy bandwidth measured in the same run (read +
write bytes of a 1 GiB `copy_`, wall for the wall columns, device time for the device ones), x off / x cmp are
speed-ups over `official` (or `reference` for noise_mse) and over `compile`, from the same timing.

`--target` times only the issue's target shape (conditions, B=32, 256², bf16 and fp32, every provider and mode), then
prints the verdict (fused fwd+bwd ≥ 85 % of copy bandwidth, ≥ 3× official, ≥ 1.5× torch.compile; bf16, the training
dtype on GPUs, decides; fp32 is reported) for wall and device time, and a launch-config sweep (BLOCK, num_warps;
wall and device ms) of the fused kernels at that shape. On CPU only reference vs official eager is measured (the
Triton interpreter is a correctness tool, not a speed one), so the verdict there is n/a.

Rows are appended to `--csv` (default docs/benchmarks/kernels.csv); a CSV whose header has the older, shorter column
set is left alone and the rows go to `<name>_v2.csv` next to it (the run says so). `--out` writes the report as
markdown tables.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import torch
import triton

from kernels import utils as _ku
from launch.harness import CsvLog, git_sha

from .cases import DTYPES, _inputs, bytes_moved, make_case
from .timing import _DEV_NOTES, DEV_CALLS, _keep_freed_memory, copy_bandwidth, device_times, time_fn

REPO = Path(__file__).resolve().parents[3]
CSV_FIELDS = ("timestamp", "git_sha", "device", "torch", "triton", "op", "mode", "provider", "dtype", "B", "H", "W",
              "ms_p50", "ms_p20", "ms_p80", "bytes", "gbps", "pct_copy", "copy_gbps", "x_vs_official",
              "x_vs_compile", "dev_ms", "dev_gbps", "dev_pct_copy", "dev_x_vs_official", "dev_x_vs_compile",
              "dev_copy_gbps")
TARGET_B, TARGET_S = 32, 256
# (label, result key, threshold, unit): the targets for the fused conditions fwd+bwd at the target shape
TARGETS = (("fused fwd+bwd, % of copy bandwidth", "pct", 85.0, "%"),
           ("fused fwd+bwd, speed-up over official eager", "x_off", 3.0, "x"),
           ("fused fwd+bwd, speed-up over torch.compile", "x_cmp", 1.5, "x"))
WALL_VS_DEVICE = ("wall = do_bench time per call, host gaps included (host-bound for small autograd calls); "
                  "device = GPU busy time per call from torch.profiler (kernels+memcpy+memset, L2 flushed, host gaps "
                  "excluded) = the cost inside a training step where the CPU runs ahead")


# ---------------------------------------------------------------------------------------------------------------
# the official eager op sequence (spec §2.3, models/network.py of the official code, diff_flag=1)
# ---------------------------------------------------------------------------------------------------------------


class Report:
    def __init__(self, md_path: str | None, append: bool = False):
        self.md = None
        if md_path:
            Path(md_path).parent.mkdir(parents=True, exist_ok=True)
            self.md = Path(md_path).open("a" if append else "w")
        self.cols = None

    def _md(self, text: str) -> None:
        if self.md:
            self.md.write(text + "\n")
            self.md.flush()

    def title(self, text: str) -> None:
        print(f"# {text}", flush=True)
        self._md(f"\n## {text}\n")

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)
        self._md(f"- {text}")

    def table(self, cols) -> None:
        """cols: (title, width, '<' or '>') per column."""
        self.cols = cols
        head = " ".join(f"{t:{a}{w}}" for t, w, a in cols)
        print(head + "\n" + "-" * len(head), flush=True)
        self._md("")
        self._md("| " + " | ".join(t for t, _, _ in cols) + " |")
        self._md("|" + "|".join("---:" if a == ">" else ":---" for _, _, a in cols) + "|")

    def row(self, cells) -> None:
        print(" ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, self.cols)).rstrip(), flush=True)
        self._md("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")

    def end_table(self) -> None:
        self._md("")
        self.cols = None

    def close(self) -> None:
        if self.md:
            self.md.close()


RESULT_COLS = [("op", 10, "<"), ("mode", 8, "<"), ("provider", 14, "<"), ("dtype", 5, "<"), ("B", 3, ">"),
               ("HxW", 8, ">"), ("ms p50", 9, ">"), ("[p20, p80]", 19, ">"), ("GB/s", 7, ">"), ("%copy", 6, ">"),
               ("x off", 6, ">"), ("x cmp", 6, ">"), ("dev ms", 9, ">"), ("dev GB/s", 8, ">"),
               ("dev %cp", 7, ">"), ("dev xoff", 8, ">"), ("dev xcmp", 8, ">")]


def _fmt(x, spec: str, none: str = "") -> str:
    return none if x is None else format(x, spec)


def _ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


# ---------------------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------------------


def measure_shape(ops, providers, d, device, quick, dev_calls, min_samples=10):
    """[(op, mode, {provider: (p50, p20, p80, dev_ms or None)})] for every (op, mode) on one input set.

    Wall time per case as it comes; device time of all the cases afterwards from ONE profiler session (a profiler
    start/stop costs far more than the calls). A provider that fails is reported on stderr and left out."""
    groups, cases = [], []
    for op in ops:
        for mode in (["fwd+bwd"] if op == "pipeline" else ["fwd", "bwd", "fwd+bwd"]):
            wall = {}
            for prov in providers[op]:
                try:
                    fn = make_case(op, mode, prov, d)
                    wall[prov] = time_fn(fn, device, quick, min_samples)
                    cases.append(((op, mode, prov), fn))
                except Exception as e:  # a provider failing (e.g. compile on an odd box) must not stop the run
                    b, _, h, w = d["y"].shape
                    print(f"# {op} {mode} {prov} {d['y'].dtype} B={b} {h}x{w} failed: {type(e).__name__}: {e}",
                          file=sys.stderr, flush=True)
            groups.append((op, mode, wall))
    devs = device_times([fn for _, fn in cases], device, dev_calls)
    dev_of = {key: dev for (key, _), dev in zip(cases, devs)}
    return [(op, mode, {prov: (*w, dev_of[(op, mode, prov)]) for prov, w in wall.items()}) for op, mode, wall in groups]


def result_rows(op, mode, dname, b, s, elsize, res, meta, copy_gbps, dev_copy_gbps):
    """Result dicts (numbers + the CSV strings) of one group; speed-ups against official/reference and compile."""
    base_name = "official" if "official" in res else ("reference" if "reference" in res else None)
    base = res.get(base_name) if base_name else None
    comp = res.get("compile")
    rows = []
    for prov, (p50, p20, p80, dev) in res.items():
        nbytes = bytes_moved(op, mode, prov, b, s, s, elsize)
        gbps = nbytes / (p50 * 1e-3) / 1e9
        dev_gbps = nbytes / (dev * 1e-3) / 1e9 if dev else None
        num = dict(p50=p50, p20=p20, p80=p80, gbps=gbps, pct=100 * gbps / copy_gbps, dev=dev, dev_gbps=dev_gbps,
                   dev_pct=_ratio(100 * dev_gbps, dev_copy_gbps) if dev_gbps else None,
                   x_off=_ratio(base[0], p50) if base else None, x_cmp=_ratio(comp[0], p50) if comp else None,
                   dev_x_off=_ratio(base[3], dev) if base else None, dev_x_cmp=_ratio(comp[3], dev) if comp else None)
        csv = dict(meta, op=op, mode=mode, provider=prov, dtype=dname, B=b, H=s, W=s, ms_p50=f"{p50:.4f}",
                   ms_p20=f"{p20:.4f}", ms_p80=f"{p80:.4f}", bytes=nbytes, gbps=f"{gbps:.1f}",
                   pct_copy=f"{num['pct']:.1f}", x_vs_official=_fmt(num["x_off"], ".2f"),
                   x_vs_compile=_fmt(num["x_cmp"], ".2f"), dev_ms=_fmt(dev, ".4f"), dev_gbps=_fmt(dev_gbps, ".1f"),
                   dev_pct_copy=_fmt(num["dev_pct"], ".1f"), dev_x_vs_official=_fmt(num["dev_x_off"], ".2f"),
                   dev_x_vs_compile=_fmt(num["dev_x_cmp"], ".2f"))
        cells = [op, mode, prov, dname, str(b), f"{s}x{s}", f"{p50:.4f}", f"[{p20:.4f}, {p80:.4f}]", f"{gbps:.1f}",
                 csv["pct_copy"], csv["x_vs_official"], csv["x_vs_compile"], _fmt(dev, ".4f", "n/a"),
                 _fmt(dev_gbps, ".1f", "n/a"), _fmt(num["dev_pct"], ".1f", "n/a"),
                 csv["dev_x_vs_official"] if dev else "n/a", csv["dev_x_vs_compile"] if dev else "n/a"]
        rows.append((prov, num, csv, cells))
    return rows


def _met(value, threshold) -> str:
    return "n/a" if value is None else ("yes" if value >= threshold else "NO")


def report_verdict(rep: Report, results: dict, dtypes, cuda: bool) -> None:
    """The issue's targets for the fused conditions fwd+bwd at B=32, 256²: measured (wall, device), threshold, met."""
    rep.note(f"targets (issue): conditions fwd+bwd, provider triton, B={TARGET_B}, {TARGET_S}x{TARGET_S}; bf16 (the "
             "training dtype on GPUs) decides, fp32 is reported. %copy: wall against the wall copy_, device "
             "against the device-time copy_")
    rep.table([("target", 44, "<"), ("dtype", 14, "<"), ("wall", 8, ">"), ("device", 8, ">"), ("threshold", 9, ">"),
               ("wall met", 8, ">"), ("device met", 10, ">")])
    verdicts = {}
    for dname in sorted(dtypes, key=lambda x: x != "bf16"):
        num = results.get(("conditions", "fwd+bwd", "triton", dname, TARGET_B, TARGET_S))
        for label, key, thr, unit in TARGETS:
            wall = num[key] if num else None
            dev = num["dev_" + key] if num else None
            spec = ".1f" if unit == "%" else ".2f"
            verdicts.setdefault(dname, []).append((_met(wall, thr), _met(dev, thr)))
            rep.row([label, dname + (" (decides)" if dname == "bf16" else " (reported)"),
                     _fmt(wall, spec, "n/a") + ("" if wall is None else unit),
                     _fmt(dev, spec, "n/a") + ("" if dev is None else unit),
                     f">= {thr:g}{unit}", _met(wall, thr), _met(dev, thr)])
    rep.end_table()
    for dname, v in verdicts.items():
        def count(ms):
            na = sum(m == "n/a" for m in ms)
            if na == len(ms):
                return "n/a"
            return f"{sum(m == 'yes' for m in ms)}/{len(ms)} targets met" + (f" ({na} n/a)" if na else "")

        rep.note(f"verdict {dname}: device time {count([d for _, d in v])}, wall {count([w for w, _ in v])}"
                 + ("" if cuda else " (CPU run: the Triton path is not measured)"))


def sweep_blocks(device, quick, rep: Report, dev_calls: int, b=32, s=512, dname="bf16", cases=None):
    """Time the fused kernels over launch configs (BLOCK, num_warps): wall and device ms per case."""
    cases = cases or [("conditions", "fwd", "triton"), ("conditions", "bwd", "triton"),
                      ("conditions", "fwd", "triton-seeded"), ("noise_mse", "fwd+bwd", "triton")]
    d = _inputs(b, s, s, DTYPES[dname], device)
    rep.note(f"launch-config sweep, {dname} B={b} {s}x{s}: wall ms p50 / device ms per call (default BLOCK=1024 "
             "warps=4)")
    cols = [("BLOCK", 5, ">"), ("warps", 5, ">")]
    for op, mode, prov in cases:
        tag = f"{'cond' if op == 'conditions' else op} {mode}{' seeded' if prov == 'triton-seeded' else ''}"
        cols.append((tag, max(len(tag), 15), ">"))
    rep.table(cols)
    for cfg in [(512, 4), (1024, 4), (1024, 8), (2048, 4), (2048, 8), (4096, 8)]:
        _ku.BENCH_OVERRIDE = cfg
        try:
            fns = [make_case(op, mode, prov, d) for op, mode, prov in cases]
            walls = [time_fn(fn, device, quick)[0] for fn in fns]
            devs = device_times(fns, device, dev_calls)
        finally:
            _ku.BENCH_OVERRIDE = None
        rep.row([str(cfg[0]), str(cfg[1])] + [f"{w:.4f} / {_fmt(dv, '.4f', 'n/a')}" for w, dv in zip(walls, devs)])
    rep.end_table()
    del d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few shapes, shorter timing")
    ap.add_argument("--target", action="store_true",
                    help=f"only the issue's target shape (conditions, B={TARGET_B}, {TARGET_S}², bf16+fp32) + verdict")
    ap.add_argument("--csv", default=str(REPO / "docs" / "benchmarks" / "kernels.csv"),
                    help="CSV to append rows to ('' = none); one with the older header diverts to <name>_v2.csv")
    ap.add_argument("--out", default=None, help="also write the report to this file as markdown tables")
    ap.add_argument("--append-out", action="store_true", help="append to --out instead of overwriting it")
    ap.add_argument("--dtypes", default=None, help="comma list of fp32,bf16,fp16 (default: bf16,fp32 on GPU)")
    ap.add_argument("--ops", default="conditions,noise_mse,pipeline")
    ap.add_argument("--dev-calls", type=int, default=DEV_CALLS, help="calls per case in the device-time profile")
    ap.add_argument("--sweep", action="store_true", help="GPU: also time the Triton kernels over (BLOCK, num_warps)")
    ap.add_argument("--no-config-sweep", action="store_true", help="--target: skip its launch-config sweep")
    args = ap.parse_args(argv)
    # unknown names were silently dropped (an empty run) or crashed with a KeyError: one line instead
    bad = [o for o in args.ops.split(",") if o not in ("conditions", "noise_mse", "pipeline")]
    bad += [d for d in (args.dtypes or "").split(",") if d and d not in DTYPES]
    if bad:
        print(f"error: unknown --ops/--dtypes value {bad[0]!r} (ops: conditions, noise_mse, pipeline; dtypes: "
              f"{', '.join(DTYPES)})", file=sys.stderr)
        return 2

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dev_name = torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)"
    min_samples = 10
    if cuda:
        shapes = [(8, 128), (32, 512)] if args.quick else [(b, s) for b in (8, 32) for s in (128, 256, 512)]
        providers = {"conditions": ["triton", "triton-seeded", "reference", "compile", "official"],
                     "noise_mse": ["triton", "triton-seeded", "reference", "compile"],
                     "pipeline": ["triton", "triton-seeded"]}
        dtypes = (args.dtypes or "bf16,fp32").split(",")
    else:
        torch.set_num_threads(1)  # 2-core CI boxes run other jobs: OpenMP threads fighting them give 100x outliers
        _keep_freed_memory()
        shapes = [(2, 64), (8, 128)] if args.quick else [(b, s) for b in (2, 8) for s in (64, 128)]
        providers = {"conditions": ["reference", "official"]}
        dtypes = (args.dtypes or "fp32").split(",")
    ops = [o for o in args.ops.split(",") if o in providers]
    if args.target:
        shapes, ops = [(TARGET_B, TARGET_S)], ["conditions"]
        dtypes = (args.dtypes or "bf16,fp32").split(",")
        if not cuda:
            min_samples = 3  # ~0.1-0.5 s per call on CPU at this shape
    log = CsvLog(args.csv, CSV_FIELDS, allow_alt=True) if args.csv else None
    csv_path, csv_note = (log.path, log.note) if log else (None, None)
    rep = Report(args.out, args.append_out)
    copy_gbps, dev_copy_gbps = copy_bandwidth(device)
    meta = dict(timestamp=_dt.datetime.now().isoformat(timespec="seconds"), git_sha=git_sha(), device=dev_name,
                torch=torch.__version__, triton=triton.__version__, copy_gbps=f"{copy_gbps:.1f}",
                dev_copy_gbps=_fmt(dev_copy_gbps, ".1f"))
    rep.title(f"launch.bench.kernels{' --target' if args.target else ''}  {meta['timestamp']}  sha {meta['git_sha']}  "
              f"{dev_name}  torch {torch.__version__}  triton {triton.__version__}")
    rep.note(f"device-to-device copy_ (read+write), the 100 % of the %copy columns: wall {copy_gbps:.1f} GB/s, "
             f"device time {_fmt(dev_copy_gbps, '.1f', 'n/a')}{' GB/s' if dev_copy_gbps else ''}")
    rep.note(WALL_VS_DEVICE)
    if cuda:
        rep.note(f"device time: torch.profiler (CUDA activity), {args.dev_calls} calls per case after 2 warm-up "
                 "calls, L2 flushed before each call by a read-only 256 MiB marker kernel left out of the sum")
    else:
        rep.note("CPU run (1 thread): no GPU, so the Triton path is NOT measured (the interpreter is not a "
                 "performance path) and device time is not available (dev columns n/a, nothing estimated). Only the "
                 "reference vs the official eager op sequence is timed, on wall clock.")
    if csv_note:
        rep.note(csv_note)
    rep.table(RESULT_COLS)
    results, n_rows = {}, 0
    for dname in dtypes:
        dtype = DTYPES[dname]
        elsize = torch.empty((), dtype=dtype).element_size()
        for b, s in shapes:
            d = _inputs(b, s, s, dtype, device)
            for op, mode, res in measure_shape(ops, providers, d, device, args.quick, args.dev_calls, min_samples):
                for prov, num, csv, cells in result_rows(op, mode, dname, b, s, elsize, res, meta, copy_gbps,
                                                         dev_copy_gbps):
                    results[(op, mode, prov, dname, b, s)] = num
                    if csv_path:
                        log.append([csv])
                        n_rows += 1
                    rep.row(cells)
            del d
            if cuda:
                torch.cuda.empty_cache()
    rep.end_table()
    for text in _DEV_NOTES:
        rep.note(text)
    rep.note("x off = speed-up over `official` (conditions) or `reference` (noise_mse); x cmp = over torch.compile; "
             "dev * = the same from device time")
    if "conditions" in ops and (TARGET_B, TARGET_S) in shapes:
        report_verdict(rep, results, dtypes, cuda)
    if cuda and args.target and not args.no_config_sweep:
        sweep_blocks(device, args.quick, rep, args.dev_calls, b=TARGET_B, s=TARGET_S, dname="bf16",
                     cases=[("conditions", "fwd", "triton"), ("conditions", "bwd", "triton"),
                            ("conditions", "fwd+bwd", "triton")])
    if cuda and args.sweep:
        sweep_blocks(device, args.quick, rep, args.dev_calls)
    rep.note(f"appended {n_rows} rows to {csv_path}" if csv_path else "no CSV written (--csv '')")
    rep.close()
    return 0




if __name__ == "__main__":
    sys.exit(main())
