"""Compile every Triton kernel of this package for an NVIDIA GPU without one (`python -m kernels.aot_check`).

The Triton interpreter (the CPU tests) runs kernels as NumPy and accepts code that the native compiler rejects: a
type mismatch, an op a dtype lacks, a misused constexpr. A GPU slot is too short to find those out. This drives each
op's launch wrapper on CPU tensors with the GPU launch settings (block sizes, warps), records every kernel launch
instead of running it (argument types, constexpr values, num_warps), and compiles exactly those specialisations with
`triton.compile` for the target (default sm_90: H100 / H200) through the ptxas in Triton's wheel, which also reports
registers and spills per kernel. Needs Triton's NVIDIA backend (in the default Linux wheel); no GPU, no CUDA driver.
Must run without TRITON_INTERPRET (the kernels must import as compilable JIT functions).

    python -m kernels.aot_check                # sm_90, a table; exit 1 if any kernel fails to compile
    python -m kernels.aot_check --arch 80      # A100
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

MODULES = ("kernels.conditions", "kernels.noise_mse", "kernels.group_norm_silu", "kernels.bench.timing")
_TYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64",
          torch.int32: "i32", torch.int64: "i64", torch.int8: "i8", torch.uint8: "u8", torch.bool: "i1"}
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
    from . import conditions, group_norm_silu, noise_mse, utils
    from .bench import timing

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
            e = torch.zeros(2, 2 * c, 1, 1, dtype=dt, requires_grad=True) if ss else None
            sc, sh = e.chunk(2, dim=1) if ss else (None, None)
            gns.group_norm_silu(x, w, b, 32, 1e-5, sc, sh, impl="triton").float().sum().backward()


def _spec(fn, args, kw):
    """(signature, constexprs, options) of one recorded launch, as triton.compile takes them."""
    names = fn.arg_names
    bound = dict(zip(names, args))
    bound.update({k: v for k, v in kw.items() if k in names})
    options = {k: v for k, v in kw.items() if k not in names}
    signature, constexprs = {}, {}
    for i, (p, n) in enumerate(zip(fn.params, names)):
        v = bound[n]
        if p.is_constexpr or v is None:
            signature[n], constexprs[(i,)] = "constexpr", v
        elif isinstance(v, torch.Tensor):
            signature[n] = "*" + _TYPES[v.dtype]
        elif isinstance(v, bool):
            signature[n] = "i1"
        elif isinstance(v, int):
            signature[n] = "i32" if -2 ** 31 <= v < 2 ** 31 else "i64"
        elif isinstance(v, float):
            signature[n] = "fp32"
        else:
            raise TypeError(f"{fn.__name__}: argument {n} of type {type(v).__name__} has no Triton type here")
    return signature, constexprs, options


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


def _describe(signature, constexprs, fn) -> str:
    ptrs = sorted({t[1:] for t in signature.values() if t.startswith("*")})
    cx = {fn.arg_names[i[0]]: v for i, v in constexprs.items() if v is not None}
    cx = {k: (v.name if isinstance(v, tl.dtype) else v) for k, v in cx.items()}
    return f"ptr {'/'.join(ptrs)}; " + ", ".join(f"{k}={v}" for k, v in cx.items())


def check(arch: int = 90) -> list[dict]:
    """Compile every distinct recorded launch for sm_<arch>; one result dict per specialisation."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    seen, results = set(), []
    for fn, args, kw in _record_launches():
        signature, constexprs, options = _spec(fn, args, kw)
        key = (fn.__name__, tuple(signature.items()), tuple(sorted((k, str(v)) for k, v in constexprs.items())),
               tuple(sorted(options.items())))
        if key in seen:
            continue
        seen.add(key)
        row = dict(kernel=f"{fn.__module__}.{fn.__name__}", spec=_describe(signature, constexprs, fn),
                   warps=options.get("num_warps", 4), error=None, regs=None, spills=None)
        t0 = time.perf_counter()
        try:
            compiled = triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32),
                                      options=options)
            row["regs"], row["spills"] = _ptxas_info(compiled.asm["ptx"], arch)
        except Exception as e:  # every failure is reported, not only the first
            row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"
        row["seconds"] = time.perf_counter() - t0
        results.append(row)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability × 10 (default 90: H100/H200)")
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
    print(f"# sm_{args.arch}: {len(results)} specialisations of {len(kernels)} kernels compiled, {len(failed)} failed"
          + (f"; never launched by the drivers here: {', '.join(missing)}" if missing else ""))
    return 1 if failed or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
