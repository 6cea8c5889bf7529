"""Compile every Triton kernel of `kernels` (and the benchmarks' marker kernel) for an NVIDIA GPU without one
(`python -m launch.bench.kernels.aot_check`).

The Triton interpreter (the CPU tests) runs kernels as NumPy and accepts code that the native compiler rejects: a
type mismatch, an op a dtype lacks, a misused constexpr. A GPU slot is too short to find those out. This drives each
op's launch wrapper on CPU tensors with the GPU launch settings (block sizes, warps) and the tensor layouts training
produces, records every kernel launch instead of running it, and compiles each one as `JITFunction.run` would on the
GPU: Triton's own binder (`create_function_from_signature`, `native_specialize_impl`) and `_pack_args` turn the real
arguments into the signature, the constexprs (integer arguments equal to 1 become constants) and the attributes
(pointers and integers divisible by 16 are marked `tt.divisibility=16`), and `triton.compile` builds that for the
target (default sm_90: H100 / H200) through the ptxas in Triton's wheel, which also reports registers and spills per
kernel. Needs Triton's NVIDIA backend (in the default Linux wheel); no GPU, no CUDA driver. Must run without
TRITON_INTERPRET (the kernels must import as compilable JIT functions).

    python -m launch.bench.kernels.aot_check                # sm_90, a table; exit 1 if any kernel fails to compile
    python -m launch.bench.kernels.aot_check --arch 80      # A100

Pointer alignment is read from the CPU tensors: the CPU allocator aligns to ≥ 64 bytes and the CUDA caching
allocator to 512, so a view's data pointer is 16-byte divisible on both or on neither.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import triton
import triton.language as tl

MODULES = ("kernels.conditions", "kernels.noise_mse", "kernels.group_norm_silu", "launch.bench.kernels.timing")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class _Recorder:
    """Stands in for a JIT kernel: `kernel[grid](*args, **kw)` appends (kernel, args, kw) instead of launching."""

    def __init__(self, fn, log):
        self.fn, self.log = fn, log

    def __getitem__(self, grid):
        return lambda *args, **kw: self.log.append((self.fn, args, kw))


def launch_kernels() -> dict[str, triton.runtime.jit.JITFunction]:
    """Every launchable kernel (module-level JIT functions named *_kernel) of MODULES, by name."""
    out = {}
    for name in MODULES:
        mod = importlib.import_module(name)
        for attr, fn in vars(mod).items():
            if attr.endswith("_kernel") and isinstance(fn, triton.runtime.jit.JITFunction):
                out[f"{name}.{attr}"] = fn
    return out


def _record_launches() -> list:
    """Run each op's wrapper (forward and backward) on CPU tensors with the GPU settings; return the launches."""
    from kernels import conditions, group_norm_silu, noise_mse, utils

    from . import timing

    log: list = []
    saved = []
    for qual, fn in launch_kernels().items():
        mod_name, attr = qual.rsplit(".", 1)
        saved.append((sys.modules[mod_name], attr, fn))
        setattr(sys.modules[mod_name], attr, _Recorder(fn, log))
    gpu = lambda n, device: utils._GPU_SETTINGS  # noqa: E731  (the launch settings a CUDA tensor gets)
    patches = [(conditions, "elementwise_settings", gpu), (noise_mse, "elementwise_settings", gpu),
               (group_norm_silu, "_INTERPRET_TILE", group_norm_silu._GPU_TILE)]
    patches = [(m, a, v, getattr(m, a)) for m, a, v in patches]
    for m, a, v, _ in patches:
        setattr(m, a, v)
    try:
        for dt in DTYPES:
            _drive_conditions(conditions, dt)
            _drive_noise_mse(noise_mse, dt)
            _drive_group_norm_silu(group_norm_silu, dt)
        noise_mse.regenerate_noise(1, (2, 3, 64, 64), impl="triton")
        timing._l2_flush(torch.device("cpu"))
    finally:
        for m, a, _, old in patches:
            setattr(m, a, old)
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)
    return log


def _drive_conditions(conditions, dt):
    b, shape = 4, (4, 3, 64, 64)
    t = {k: torch.zeros(shape, dtype=dt) for k in ("y", "x_s", "x_r", "noise")}
    ab = torch.full((b,), 0.5)
    swap = torch.zeros(b, dtype=torch.bool)
    for neg, seeded in ((True, False), (True, True), (False, False)):
        r = torch.zeros(2 * b, *shape[1:], dtype=dt, requires_grad=True)
        cond, ys = conditions.build_conditions(t["y"], t["x_s"], t["x_r"], r[:b], r[b:], ab, swap,
                                               swap if neg else None, None if seeded else t["noise"],
                                               impl="triton", seed=7 if seeded else None)
        (cond.float().sum() + ys.float().sum()).backward()


def _drive_noise_mse(noise_mse, dt):
    eh = torch.zeros(8, 3, 64, 64, dtype=dt, requires_grad=True)
    noise_mse.noise_mse(eh, torch.zeros(4, 3, 64, 64, dtype=dt), impl="triton").sum().backward()
    noise_mse.noise_mse(eh, seed=3, groups=2, impl="triton").sum().backward()


def _drive_group_norm_silu(gns, dt):
    for c, s in ((64, 128), (128, 64), (256, 32), (512, 16)):  # every level of the paper's ε_θ at 128²
        for ss in (True, False):
            x = torch.zeros(2, c, s, s, dtype=dt, requires_grad=True)
            w, b = torch.ones(c, dtype=dt, requires_grad=True), torch.zeros(c, dtype=dt, requires_grad=True)
            # the ResBlock's embedding: one (B, 2C) projection, chunked into scale and shift views
            e = torch.zeros(2, 2 * c, 1, 1, dtype=dt, requires_grad=True) if ss else None
            sc, sh = e.chunk(2, dim=1) if ss else (None, None)
            y = gns.group_norm_silu(x, w, b, 32, 1e-5, sc, sh, impl="triton")
            y.backward(torch.ones_like(y))  # dy as training gives it: a dense NCHW gradient (the next conv's)


def jit_specialisation(fn, args, kw, backend):
    """(signature, constexprs, attrs, options) of one launch `fn[grid](*args, **kw)`, built by Triton's own code the
    way `JITFunction.run` builds them before it compiles (binder → specialisation → `_pack_args`)."""
    from triton import knobs
    from triton.runtime.jit import create_function_from_signature

    kw = dict(kw)
    kw["debug"] = kw.get("debug", fn.debug) or knobs.runtime.debug
    kw["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*args, **kw)
    options, signature, constexprs, attrs = fn._pack_args(backend, kw, bound, specialization, options)
    return signature, constexprs, attrs, options


def _ptxas_info(ptx: str, arch: int) -> tuple[int | None, int | None]:
    """(registers, spill bytes) of the PTX from ptxas -v (None when the bundled ptxas is not found)."""
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(ptxas):
        return None, None
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        out = subprocess.run([ptxas, f"-arch=sm_{arch}{'a' if arch >= 90 else ''}", "-v", f.name, "-o", os.devnull],
                             capture_output=True, text=True, timeout=120).stderr
    finally:
        os.unlink(f.name)
    regs = re.search(r"Used (\d+) registers", out)
    spills = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", out)]
    return (int(regs.group(1)) if regs else None), (sum(spills) if spills else None)


def _describe(signature, constexprs, attrs, fn) -> str:
    """Pointer dtypes, the constexprs (kernel constexprs and arguments specialised to 1), and the arguments marked
    16-divisible (`D:` list)."""
    ptrs = sorted({t[1:] for t in signature.values() if t.startswith("*")})
    cx = {fn.arg_names[i[0]]: v for i, v in constexprs.items() if v is not None}
    cx = {k: (v.name if isinstance(v, tl.dtype) else v) for k, v in cx.items()}
    div = [fn.arg_names[i[0]] for i, a in attrs.items() if ["tt.divisibility", 16] in a]
    return (f"ptr {'/'.join(ptrs)}; " + ", ".join(f"{k}={v}" for k, v in cx.items())
            + f"; D: {','.join(div) if div else '-'}")


def check(arch: int = 90) -> list[dict]:
    """Compile every distinct recorded launch for sm_<arch>; one result dict per specialisation."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    seen, results = set(), []
    for fn, args, kw in _record_launches():
        signature, constexprs, attrs, options = jit_specialisation(fn, args, kw, backend)
        key = (fn.__name__, tuple(signature.items()), tuple(sorted((k, str(v)) for k, v in constexprs.items())),
               tuple(sorted((k, str(v)) for k, v in attrs.items())), str(options))
        if key in seen:
            continue
        seen.add(key)
        row = dict(kernel=f"{fn.__module__}.{fn.__name__}", spec=_describe(signature, constexprs, attrs, fn),
                   warps=options.num_warps, fp_fusion=options.enable_fp_fusion, error=None, regs=None, spills=None)
        t0 = time.perf_counter()
        try:
            compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                      options=options.__dict__)
            row["regs"], row["spills"] = _ptxas_info(compiled.asm["ptx"], arch)
        except Exception as e:  # every failure is reported, not only the first
            row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"
        row["seconds"] = time.perf_counter() - t0
        results.append(row)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability × 10 (default 90: H100/H200)")
    ap.add_argument("--md", help="also write the table as markdown to this file (docs/benchmarks/aot_sm90.md)")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("error: TRITON_INTERPRET=1 is set; the AOT check compiles the kernels, run it without it")
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.backends.nvidia.compiler import CUDABackend  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"error: this Triton has no NVIDIA backend to compile with ({e})") from None
    results = check(args.arch)
    print(f"{'kernel':44} {'warps':>5} {'regs':>5} {'spill B':>7} {'s':>5}  specialisation")
    for r in results:
        status = r["error"] or ""
        print(f"{r['kernel']:44} {r['warps']:>5} {r['regs'] if r['regs'] is not None else '-':>5} "
              f"{r['spills'] if r['spills'] is not None else '-':>7} {r['seconds']:5.1f}  {r['spec']} {status}")
    failed = [r for r in results if r["error"]]
    kernels = launch_kernels()
    missing = sorted(set(kernels) - {r["kernel"] for r in results})
    summary = (f"# sm_{args.arch}: {len(results)} specialisations of {len(kernels)} kernels compiled, "
               f"{len(failed)} failed" + (f"; never launched by the drivers here: {', '.join(missing)}"
                                          if missing else ""))
    print(summary, flush=True)
    if args.md:
        _write_md(args.md, results, args.arch, summary)
    return 1 if failed or missing else 0


def _write_md(path: str, results: list[dict], arch: int, summary: str) -> None:
    fusion = {r["fp_fusion"] for r in results}
    fusion = ("on in every launch" if fusion == {True} else "off in every launch" if fusion == {False}
              else "differs between launches (see the code)")
    lines = [f"# Triton kernels compiled for sm_{arch} with the JIT's specialisation "
             f"(`python -m launch.bench.kernels.aot_check --md {path}`)", "",
             f"Triton {triton.__version__}, torch {torch.__version__}. {summary[2:]}. Specialisation: pointer dtypes; "
             "constexprs (the kernel's own and every integer argument equal to 1); `D:` the arguments marked "
             "16-divisible. Tensors as training lays them out: NCHW, contiguous gradients, the ResBlock's "
             f"scale/shift as views of one (B, 2C) projection. FP fusion: {fusion}.", "",
             "| kernel | warps | registers | spill bytes | specialisation |", "|---|---:|---:|---:|---|"]
    for r in results:
        regs = r["regs"] if r["regs"] is not None else (r["error"] or "-")
        lines.append(f"| {r['kernel'].rsplit('.', 1)[1]} | {r['warps']} | {regs} | "
                     f"{r['spills'] if r['spills'] is not None else '-'} | {r['spec']} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
