"""Timing for the kernel microbenchmarks: wall time (triton.testing.do_bench, L2 flushed) and device time (GPU
busy time per call from torch.profiler, calls cut apart by L2-flush marker kernels); see launch/bench/kernels/run.py."""
from __future__ import annotations

import statistics
import sys
import time

import torch
import triton
import triton.language as tl

from kernels.utils import cdiv


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


def _keep_freed_memory() -> None:
    """CPU timing: stop glibc from unmapping freed multi-MB blocks, else every call page-faults its outputs afresh."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
