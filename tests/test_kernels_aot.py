"""Every Triton kernel compiles natively for an H100/H200 (sm_90) at the launch settings a GPU gets, without a GPU
(kernels/aot_check.py): the interpreter behind the other kernel tests accepts code the native compiler rejects (a plain
Python helper called from a kernel, for one), and a GPU slot is too short to find that out."""
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
    proc = subprocess.run([sys.executable, "-m", "kernels.aot_check", "--arch", "90"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("# sm_90:") and ", 0 failed" in summary and "never launched" not in summary, summary
    # each launchable kernel of the package appears with at least one specialisation
    for name in ("_build_conditions_fwd_kernel", "_build_conditions_bwd_kernel", "_noise_mse_fwd_kernel",
                 "_noise_mse_bwd_kernel", "_regenerate_noise_kernel", "_gn_silu_fwd_kernel", "_gn_silu_bwd_kernel"):
        assert name in out, name


def test_aot_check_refuses_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "kernels.aot_check"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error: TRITON_INTERPRET=1")
