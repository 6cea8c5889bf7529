"""launch/bench/profile_gpu.py: kernel names into categories, the busy-time union behind 'idle', and a CPU smoke run
of the trainer-step profile (its GPU path needs a device)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import launch.bench.profile_gpu as pg  # noqa: E402


@pytest.mark.parametrize("name, cat", [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "convolution"),
    ("cudnn::engines_precompiled::nchwToNhwcKernel", "convolution"),
    ("void cutlass::Kernel<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>", "matmul"),
    ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
    ("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<c10::BFloat16>", "norm + elementwise"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::silu_kernel>", "norm + elementwise"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer"),
    ("Memcpy HtoD (Pageable -> Device)", "copies"),
    ("triton_poi_fused_add_mul_silu_0", "norm + elementwise"),
])
def test_categories(name, cat):
    assert pg.category(name) == cat


def test_busy_union_and_idle():
    assert pg.busy_union([(0, 10), (5, 15), (20, 30)]) == 25
    r = pg.summarize([("conv_a", 0, 10), ("silu_b", 5, 10), ("Memcpy HtoD", 20, 10)], wall_us=40, steps=1)
    assert r["busy_ms"] == pytest.approx(0.025) and r["idle_ms"] == pytest.approx(0.015)
    assert r["ms_per_step"]["convolution"] == pytest.approx(0.01)


def test_cpu_smoke(tmp_path, capsys):
    out = tmp_path / "prof"
    assert pg.main(["--device", "cpu", "--size", "16", "--batch", "2", "--restorer-args", '{"depth": 2, "wf": 8}',
                    "--diffusion-preset", "tiny", "--steps", "1", "--warmup", "1", "--out", str(out)]) == 0
    text = (tmp_path / "prof.md").read_text()
    assert "| convolution |" in text and "idle (no kernel running)" in text and "**wall**" in text
