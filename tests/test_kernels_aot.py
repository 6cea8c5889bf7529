"""Every Triton kernel compiles natively for an H100/H200 (sm_90) at the launch settings a GPU gets, without a GPU
(launch/bench/kernels/aot_check.py): the interpreter behind the other kernel tests accepts code the native compiler
rejects (a plain Python helper called from a kernel, for one), and a GPU slot is too short to find that out."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _has_nvidia_backend() -> bool:
    try:
        import triton.backends.nvidia.compiler  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_nvidia_backend(), reason="this Triton has no NVIDIA backend to compile with")
def test_every_kernel_compiles_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile, do not interpret
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # a fresh compile, never a cached one
    proc = subprocess.run([sys.executable, "-m", "launch.bench.kernels.aot_check", "--arch", "90"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the summary line on stdout, wherever it is: warnings (stderr) may come before or after it
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("# sm_90:")]
    assert len(summaries) == 1, out[-4000:]
    summary = summaries[0]
    assert ", 0 failed" in summary and "never launched" not in summary, summary
    # each launchable kernel of the package appears with at least one specialisation
    for name in ("_build_conditions_fwd_kernel", "_build_conditions_bwd_kernel", "_noise_mse_fwd_kernel",
                 "_noise_mse_bwd_kernel", "_regenerate_noise_kernel", "_gn_silu_fwd_kernel", "_gn_silu_bwd_kernel"):
        assert name in out, name


def test_aot_check_refuses_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "launch.bench.kernels.aot_check"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: TRITON_INTERPRET=1")


_SPEC_SNIPPET = """
import json, torch
from triton.backends.compiler import GPUTarget
from triton.compiler import make_backend
from launch.bench.kernels import aot_check
backend = make_backend(GPUTarget("cuda", 90, 32))
for fn, args, kw in aot_check._record_launches():
    if fn.__name__ == "_gn_silu_bwd_kernel" and args[0].dtype == torch.float32 and args[0].shape[1] == 64:
        sig, cx, attrs, opts = aot_check.jit_specialisation(fn, args, kw, backend)
        div = sorted(fn.arg_names[k[0]] for k, v in attrs.items() if ["tt.divisibility", 16] in v)
        print(json.dumps(dict(sig=sig, cx={fn.arg_names[k[0]]: str(v) for k, v in cx.items()}, div=div,
                              warps=opts.num_warps, fusion=opts.enable_fp_fusion, hw=args[0].shape[2] ** 2)))
        break
"""


@pytest.mark.skipif(not _has_nvidia_backend(), reason="this Triton has no NVIDIA backend to compile with")
def test_aot_check_compiles_the_jit_specialisation():
    """The fp32 GroupNorm + SiLU backward at the U-Net's first level (B=2, C=64, 128×128, NCHW, dense dy), as the
    JIT specialises it on a GPU: integer arguments equal to 1 (the spatial strides, the scale/shift channel stride)
    become constants, every pointer and every 16-divisible integer is marked divisible by 16, floats are not
    specialised, and the launch carries FP fusion on."""
    import json

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", _SPEC_SNIPPET], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = json.loads(proc.stdout.strip().splitlines()[-1])
    sig, cx = spec["sig"], spec["cx"]
    assert spec["hw"] == 128 * 128 and spec["warps"] == 4 and spec["fusion"] is True
    for n in ("sx_hw", "sg_hw", "sd_hw", "ss_c"):  # == 1: constants in the compiled code
        assert sig[n] == "constexpr" and cx[n] == "1", (n, sig[n], cx.get(n))
    assert cx["HAS_SS"] == "True" and cx["CPG_P2"] == "2" and cx["BLOCK_HW"] == "1024"
    ptrs = [n for n, t in sig.items() if t.startswith("*")]
    assert len(ptrs) == 13 and all(sig[n] == "*fp32" for n in ptrs)
    # sizes and strides: G = 32, C = 64, HW = 16384, x/dy/dx batch stride 64·16384, channel stride 16384, the
    # embedding's batch stride 2·64 = 128: all 16-divisible; CPG = 2 is not
    ints = ["G", "C", "HW", "sx_b", "sx_c", "sg_b", "sg_c", "sd_b", "sd_c", "ss_b"]
    assert spec["div"] == sorted(ptrs + ints), spec["div"]
    assert sig["CPG"] == "i32" and "CPG" not in spec["div"]


def test_triton_pin_lies_in_the_supported_range():
    """make install's Triton pin (Makefile TRITON) satisfies setup.py's triton requirement."""
    import re

    from packaging.requirements import Requirement

    pin = re.search(r"^TRITON \?= triton==(\S+)$", (REPO / "Makefile").read_text(), re.M)
    req = re.search(r'"(triton[^"]*)"', (REPO / "setup.py").read_text())
    assert pin and req, "the Makefile's TRITON pin or setup.py's triton requirement is missing"
    spec = Requirement(req.group(1)).specifier
    assert str(spec), f"setup.py leaves triton unbounded: {req.group(1)}"
    assert spec.contains(pin.group(1)), f"Makefile pins triton=={pin.group(1)}, setup.py asks {req.group(1)}"
