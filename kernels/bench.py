"""Benchmark of the fused DAA condition builder and the seeded noise MSE (`python -m kernels.bench`, `make bench`).

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
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from . import noise_mse as _nm
from .conditions import build_conditions, build_conditions_reference
from .noise_mse import cdiv, noise_mse

REPO = Path(__file__).resolve().parent.parent
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
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


def official_conditions(y, x_s, x_r, r_s, r_r, alpha_bar, mask_cpu, mask_neg_cpu, noise):
    """What a straightforward port does: separate q_sample, ŷ_s/ŷ_r, clone + boolean-mask in-place swaps (masks are
    CPU tensors, `torch.rand(b) > 0.5`, as in the official code), two channel cats, one batch cat."""
    g = alpha_bar.view(-1, 1, 1, 1).to(y.dtype)
    y_noisy = g.sqrt() * y + (1 - g).sqrt() * noise
    y_syn_correct = x_s + r_s
    y_real_correct = x_r + r_r
    y_syn_correct_swap = y_syn_correct.clone()
    y_real_correct_swap = y_real_correct.clone()
    y_syn_correct_swap[mask_cpu] = y_real_correct[mask_cpu]
    y_real_correct_swap[mask_cpu] = y_syn_correct[mask_cpu]
    y_syn_correct_neg = x_s + r_r
    y_real_correct_neg = x_r + r_s
    y_syn_correct_neg_swap = y_syn_correct_neg.clone()
    y_real_correct_neg_swap = y_real_correct_neg.clone()
    y_syn_correct_neg_swap[mask_neg_cpu] = y_real_correct_neg[mask_neg_cpu]
    y_real_correct_neg_swap[mask_neg_cpu] = y_syn_correct_neg[mask_neg_cpu]
    pos = torch.cat([y_noisy, y_syn_correct_swap, y_real_correct_swap], dim=1)
    neg = torch.cat([y_noisy, y_syn_correct_neg_swap, y_real_correct_neg_swap], dim=1)
    return torch.cat([pos, neg], 0), y_syn_correct


def reference_noise_mse(eps_hat, noise):
    b = noise.shape[0]
    return torch.stack([F.mse_loss(eps_hat[:b], noise), F.mse_loss(eps_hat[b:], noise)])


# ---------------------------------------------------------------------------------------------------------------
# byte models (minimal traffic; planes of B·H·W elements, see kernels/conditions.py)
# ---------------------------------------------------------------------------------------------------------------


def bytes_moved(op: str, mode: str, provider: str, b: int, h: int, w: int, elsize: int) -> int:
    plane = b * h * w * elsize
    seeded = provider == "triton-seeded"
    if op == "conditions":
        fwd = 36 if seeded else 39
        bwd = 21
    elif op == "noise_mse":  # ε̂ is 6 planes, ε 3 planes
        fwd = 6 if seeded else 9
        bwd = 12 if seeded else 15
    else:  # pipeline fwd+bwd: randn write 3 + conditions 60 + noise_mse 24, seeded: 57 + 18
        return plane * (75 if seeded else 87)
    return plane * {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]


# ---------------------------------------------------------------------------------------------------------------
# timing: wall (do_bench / a timer loop on CPU) and device (torch.profiler)
# ---------------------------------------------------------------------------------------------------------------


def time_fn(fn, device: torch.device, quick: bool, min_samples: int = 10) -> tuple[float, float, float]:
    """Wall time (p50, p20, p80) in ms."""
    if device.type == "cuda":
        q = triton.testing.do_bench(fn, warmup=10 if quick else 25, rep=40 if quick else 100, quantiles=[0.5, 0.2, 0.8])
        return tuple(float(x) for x in q)
    for _ in range(3):
        fn()
    times, t_end = [], time.perf_counter() + (0.2 if quick else 0.5)
    while len(times) < min_samples or (time.perf_counter() < t_end and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    qs = statistics.quantiles(times, n=10)
    return statistics.median(times), qs[1], qs[7]


@triton.jit
def _l2_flush_marker_kernel(buf_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """Reads a zero int32 buffer and stores nothing (the store's mask is data-dependent, so the loads stay, but never
    true): evicts L2 with clean lines, so no dirty write-back of the flush lands in the next timed call. Its unique
    name also marks call boundaries on the profiler's device timeline."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(buf_ptr + offs, mask=offs < n, other=0)
    s = tl.sum(v, axis=0)
    tl.store(out_ptr + pid, s, mask=s != 0)


_MARKER = "l2_flush_marker"
_FLUSH_INTS = 1 << 26  # 256 MiB of int32: 5x the 50 MiB L2 of an H100 / H200
_FLUSH_BLOCK = 4096
_FLUSH_BUFFERS: dict = {}
DEV_CALLS = 10
_DEV_NOTES: list[str] = []  # why device time was n/a (each reason reported once)
_PROFILER_ACTIVITIES = None  # the activity set that yielded device events (found on the first measurement)


def _l2_flush(device: torch.device) -> None:
    bufs = _FLUSH_BUFFERS.get(device)
    if bufs is None:
        bufs = _FLUSH_BUFFERS[device] = (torch.zeros(_FLUSH_INTS, dtype=torch.int32, device=device),
                                         torch.zeros(cdiv(_FLUSH_INTS, _FLUSH_BLOCK), dtype=torch.int32, device=device))
    buf, out = bufs
    _l2_flush_marker_kernel[(out.numel(),)](buf, out, _FLUSH_INTS, BLOCK=_FLUSH_BLOCK, num_warps=8)


def _dev_note(text: str) -> None:
    if text not in _DEV_NOTES:
        _DEV_NOTES.append(text)
        print(f"# {text}", file=sys.stderr, flush=True)


def _is_device_work(activity) -> bool:
    """Kernels, memcpys and memsets; not the annotation / synchronisation spans that also sit on the device rows."""
    a = str(activity).lower()
    return "kernel" in a or "memcpy" in a or "memset" in a


def _device_events(prof) -> list[tuple[int, int, str]]:
    """(start_ns, duration_ns, name) of the device work the profiler recorded, in start order."""
    cuda = torch.autograd.DeviceType.CUDA
    try:
        rows = [(e.start_ns(), e.duration_ns(), e.name(), e.activity_type() if hasattr(e, "activity_type") else None)
                for e in prof.profiler.kineto_results.events() if e.device_type() == cuda]
    except (AttributeError, RuntimeError, TypeError):  # an older / newer profiler layout: the parsed events
        rows = [(int(e.time_range.start * 1e3), int(e.time_range.elapsed_us() * 1e3), e.name,
                 getattr(e, "activity_type", None)) for e in prof.events() if e.device_type == cuda]
    rows.sort(key=lambda r: (r[0], r[1]))
    if all(isinstance(act, str) for *_, act in rows):  # kineto's names: "kernel", "gpu_memcpy", "gpu_memset", ...
        return [(st, du, nm) for st, du, nm, act in rows if _is_device_work(act)]
    return _drop_spans([(st, du, nm) for st, du, nm, _ in rows])  # no (or numeric) activity types


def _drop_spans(evs):
    """Without activity types: on one stream real work never overlaps, so of two overlapping device events the
    longer is an annotation span around work (e.g. a compiled graph's record_function) and is dropped."""
    out = []
    for ev in evs:
        if out and ev[0] < out[-1][0] + out[-1][1]:
            if ev[1] < out[-1][1]:
                out[-1] = ev
            continue
        out.append(ev)
    return out


def device_times(fns, device: torch.device, n: int = DEV_CALLS) -> list[float | None]:
    """GPU busy ms per call of each zero-argument callable (None = n/a, the reason goes to `_DEV_NOTES`).

    One profiler session for all of them: warm-up (2 calls each), then for each fn n × (L2-flush marker, fn), a
    closing marker, synchronize. On the device timeline (one stream, so start order = launch order) the markers cut
    len(fns)·n segments; a call's time is the summed duration of the kernels / memcpys / memsets in its segment.
    """
    if device.type != "cuda" or not fns:
        return [None] * len(fns)
    try:
        return _device_times(fns, device, n)
    except Exception as e:  # the profiler must never take the benchmark down
        _dev_note(f"device time n/a: profiler failed ({type(e).__name__}: {str(e)[:200]})")
        return [None] * len(fns)


def _device_times(fns, device, n):
    global _PROFILER_ACTIVITIES
    from torch.profiler import ProfilerActivity, profile

    for fn in fns:
        fn()
        fn()
    _l2_flush(device)
    torch.cuda.synchronize(device)
    options = ([_PROFILER_ACTIVITIES] if _PROFILER_ACTIVITIES else
               [[ProfilerActivity.CUDA], [ProfilerActivity.CPU, ProfilerActivity.CUDA]])
    evs = []
    for acts in options:
        with profile(activities=acts) as prof:
            for fn in fns:
                for _ in range(n):
                    _l2_flush(device)
                    fn()
            _l2_flush(device)
            torch.cuda.synchronize(device)
        evs = _device_events(prof)
        if evs:
            _PROFILER_ACTIVITIES = acts
            break
    if not evs:
        _dev_note("device time n/a: the profiler recorded no CUDA kernel/memcpy/memset events (no CUPTI?)")
        return [None] * len(fns)
    per_call = per_call_ms(evs, len(fns), n)
    if isinstance(per_call, str):
        _dev_note(f"device time n/a: {per_call}")
        return [None] * len(fns)
    return per_call


def per_call_ms(evs, n_fns: int, n: int) -> list[float | None] | str:
    """Split the device timeline [(start_ns, duration_ns, name)] at the L2-flush markers into n_fns·n calls (the
    first n belong to the first fn, ...) and return each fn's mean summed duration per call in ms (None if a fn's
    calls did no device work at all). A string says why the timeline does not split as expected."""
    marks = [i for i, ev in enumerate(evs) if _MARKER in ev[2]]
    want = n_fns * n + 1
    if len(marks) != want:
        names = sorted({ev[2][:50] for ev in evs})[:6]
        return (f"found {len(marks)} L2-flush markers on the device timeline, expected {want} (device event names: "
                f"{names})")
    calls = [sum(ev[1] for ev in evs[marks[j] + 1:marks[j + 1]]) for j in range(want - 1)]
    out = []
    for k in range(n_fns):
        total_ns = sum(calls[k * n:(k + 1) * n])
        out.append(total_ns / n / 1e6 if total_ns > 0 else None)
    return out


def copy_bandwidth(device: torch.device) -> tuple[float, float | None]:
    """GB/s of a large device-to-device copy_, counting bytes read + written: (wall, device time or None)."""
    n = (1 << 28) if device.type == "cuda" else (1 << 25)  # 1 GiB / 128 MiB of fp32
    bufs = [torch.randn(n, device=device)]
    bufs.append(torch.empty_like(bufs[0]))

    def copy():
        bufs[1].copy_(bufs[0])

    nbytes = 2 * n * 4
    ms = time_fn(copy, device, quick=False)[0]
    dev = device_times([copy], device)[0]
    bufs.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return nbytes / (ms * 1e-3) / 1e9, (nbytes / (dev * 1e-3) / 1e9 if dev else None)


# ---------------------------------------------------------------------------------------------------------------
# benchmark cases
# ---------------------------------------------------------------------------------------------------------------


def _inputs(b, h, w, dtype, device):
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, generator=g, device=device, dtype=dtype)

    d = dict(y=rnd(b, 3, h, w), x_s=rnd(b, 3, h, w), x_r=rnd(b, 3, h, w), noise=rnd(b, 3, h, w),
             r=rnd(2 * b, 3, h, w).requires_grad_(True))
    d["alpha_bar"] = torch.rand(b, generator=g, device=device)
    d["swap_pos"] = torch.arange(b, device=device) % 2 == 0  # half the samples swapped, like Bernoulli(0.5)
    d["swap_neg"] = torch.arange(b, device=device) % 4 < 2
    d["mask_cpu"], d["mask_neg_cpu"] = d["swap_pos"].cpu(), d["swap_neg"].cpu()
    d["eps_hat"] = rnd(2 * b, 3, h, w).requires_grad_(True)
    d["g_cond"] = rnd(2 * b, 9, h, w)
    d["g_ys"] = rnd(b, 3, h, w)
    d["g_d"] = torch.tensor([1.0, -0.5], device=device)
    return d


_COMPILED = {}


def _compiled(fn):
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def conditions_forward(provider: str, d):
    b = d["y"].shape[0]
    r_s, r_r = d["r"][:b], d["r"][b:]
    common = (d["y"], d["x_s"], d["x_r"], r_s, r_r, d["alpha_bar"])
    if provider == "triton":
        return build_conditions(*common, d["swap_pos"], d["swap_neg"], d["noise"], impl="triton")
    if provider == "triton-seeded":
        return build_conditions(*common, d["swap_pos"], d["swap_neg"], None, impl="triton", seed=1234)
    if provider == "reference":
        return build_conditions_reference(*common, d["swap_pos"], d["swap_neg"], d["noise"])
    if provider == "compile":
        return _compiled(build_conditions_reference)(*common, d["swap_pos"], d["swap_neg"], d["noise"])
    if provider == "official":
        return official_conditions(*common, d["mask_cpu"], d["mask_neg_cpu"], d["noise"])
    raise ValueError(provider)


def noise_mse_forward(provider: str, d):
    if provider == "triton":
        return noise_mse(d["eps_hat"], d["noise"], impl="triton")
    if provider == "triton-seeded":
        return noise_mse(d["eps_hat"], seed=1234, groups=2, impl="triton")
    if provider == "reference":
        return reference_noise_mse(d["eps_hat"], d["noise"])
    if provider == "compile":
        return _compiled(reference_noise_mse)(d["eps_hat"], d["noise"])
    raise ValueError(provider)


def pipeline_step(provider: str, d):
    """Everything ε touches in one step, fwd+bwd (the U-Net in between replaced by the identity on cond[:, :3])."""
    b = d["y"].shape[0]
    r_s, r_r = d["r"][:b], d["r"][b:]
    common = (d["y"], d["x_s"], d["x_r"], r_s, r_r, d["alpha_bar"], d["swap_pos"], d["swap_neg"])
    if provider == "triton":
        noise = torch.randn_like(d["y"])
        cond, ys = build_conditions(*common, noise, impl="triton")
        dd = noise_mse(d["eps_hat"], noise, impl="triton")
    else:
        cond, ys = build_conditions(*common, None, impl="triton", seed=1234)
        dd = noise_mse(d["eps_hat"], seed=1234, groups=2, impl="triton")
    torch.autograd.grad([cond, ys, dd], [d["r"], d["eps_hat"]], [d["g_cond"], d["g_ys"], d["g_d"]])


def make_case(op, mode, provider, d):
    """A zero-argument callable timing `mode` of `provider`."""
    if op == "pipeline":
        return lambda: pipeline_step(provider, d)
    fwd = (lambda: conditions_forward(provider, d)) if op == "conditions" else (lambda: noise_mse_forward(provider, d))
    if op == "conditions":
        inputs, grads = [d["r"]], lambda outs: [d["g_cond"], d["g_ys"]]
    else:
        inputs, grads = [d["eps_hat"]], lambda outs: [d["g_d"]]
    if mode == "fwd":
        return fwd
    if mode == "fwd+bwd":
        def full():
            outs = fwd()
            outs = outs if isinstance(outs, tuple) else (outs,)
            torch.autograd.grad(outs, inputs, grads(outs))
        return full
    outs = fwd()
    outs = outs if isinstance(outs, tuple) else (outs,)
    return lambda: torch.autograd.grad(outs, inputs, grads(outs), retain_graph=True)


# ---------------------------------------------------------------------------------------------------------------
# report: fixed-width text on stdout, the same tables as markdown in --out
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


def git_sha() -> str:
    """Short HEAD sha read from .git directly (no git subprocess); 'unknown' outside a checkout or before a commit."""
    try:
        git = REPO / ".git"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12]
        ref = head.split(" ", 1)[1]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"


def _keep_freed_memory() -> None:
    """CPU timing: stop glibc from unmapping freed multi-MB blocks, else every call page-faults its outputs afresh."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _csv_destination(path: Path) -> tuple[Path, str | None]:
    """Where rows go: `path` if it is new / empty or has today's header; else `<stem>_v2<suffix>` next to it, so old
    rows stay readable with their own header. Returns (path, note for the report or None)."""
    header = ",".join(CSV_FIELDS)

    def header_of(p: Path) -> str | None:
        if not p.exists() or p.stat().st_size == 0:
            return None
        with p.open() as f:
            return f.readline().rstrip("\r\n")

    h = header_of(path)
    if h is None or h == header:
        return path, None
    alt = path.with_name(path.stem + "_v2" + path.suffix)
    h2 = header_of(alt)
    if h2 is not None and h2 != header:
        raise SystemExit(f"kernels.bench: neither {path} nor {alt} has the current CSV header; pass --csv")
    return alt, f"{path} has the older column set (no dev_* columns): rows go to {alt} instead"


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
        _nm.BENCH_OVERRIDE = cfg
        try:
            fns = [make_case(op, mode, prov, d) for op, mode, prov in cases]
            walls = [time_fn(fn, device, quick)[0] for fn in fns]
            devs = device_times(fns, device, dev_calls)
        finally:
            _nm.BENCH_OVERRIDE = None
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
    # unknown names were silently dropped (an empty run) or crashed with a KeyError: one line instead (issue #7)
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
    csv_path, csv_note = _csv_destination(Path(args.csv)) if args.csv else (None, None)
    rep = Report(args.out, args.append_out)
    copy_gbps, dev_copy_gbps = copy_bandwidth(device)
    meta = dict(timestamp=_dt.datetime.now().isoformat(timespec="seconds"), git_sha=git_sha(), device=dev_name,
                torch=torch.__version__, triton=triton.__version__, copy_gbps=f"{copy_gbps:.1f}",
                dev_copy_gbps=_fmt(dev_copy_gbps, ".1f"))
    rep.title(f"kernels.bench{' --target' if args.target else ''}  {meta['timestamp']}  sha {meta['git_sha']}  "
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
                        _append_csv(csv_path, [csv])
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


def _append_csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a") as f:
        if new:
            f.write(",".join(CSV_FIELDS) + "\n")
        for r in rows:
            f.write(",".join(str(r[k]).replace(",", ";") for k in CSV_FIELDS) + "\n")


if __name__ == "__main__":
    sys.exit(main())
