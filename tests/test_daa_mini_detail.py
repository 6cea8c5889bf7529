"""launch/studies/daa_mini_detail.py: the detail-kept measurement on constructed cases whose answer is known."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("daa_mini_detail", ROOT / "launch" / "studies" / "daa_mini_detail.py")
detail = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(detail)


def _scene(n=4, size=64, seed=0) -> torch.Tensor:
    """Textured images: random smooth shapes plus fine texture, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


def test_high_pass_removes_constants_and_keeps_fine_detail():
    flat = torch.full((1, 3, 32, 32), 0.4, dtype=torch.float64)
    assert detail.high_pass(flat).abs().max() < 1e-12
    y = _scene().double()
    assert detail.high_pass(y).pow(2).mean() > 0.5 * (y - y.mean()).pow(2).mean()  # white texture is mostly high-pass


def test_kept_is_one_for_the_clean_image_and_unbiased_by_noise():
    y = _scene()
    every = np.arange(len(y))
    kept, err = detail.ratios(detail.detail_terms(y, y), every)
    assert kept == pytest.approx(1.0) and err == pytest.approx(0.0, abs=1e-12)
    noisy = y + 0.1 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    kept_n, err_n = detail.ratios(detail.detail_terms(noisy, y), every)
    assert kept_n == pytest.approx(1.0, abs=0.03)  # noise is uncorrelated with the detail: still all kept
    assert err_n > 0.1  # ... but it is high-pass error


@pytest.mark.parametrize("scale", [0.0, 0.5, 0.8])
def test_kept_reads_the_share_of_detail_amplitude_left(scale):
    """r = scale · y + (1 − scale) · 0.5 (contrast scaled around grey; H is linear and removes constants): exactly
    `scale` of the detail is kept and (1 − scale)² of it is error."""
    y = _scene().double()
    r = scale * y + (1 - scale) * 0.5
    kept, err = detail.ratios(detail.detail_terms(r, y), np.arange(len(y)))
    assert kept == pytest.approx(scale, abs=1e-9) and err == pytest.approx((1 - scale) ** 2, abs=1e-9)


def test_ratios_pool_over_crops():
    y = _scene(2)
    y[1] = 0.5 + 0.001 * (y[1] - 0.5)  # an almost flat crop: its own ratio would be noise
    r = y.clone()
    r[1] = 0.5  # smoothed to nothing, but it carries almost none of the group's detail
    kept, _ = detail.ratios(detail.detail_terms(r, y), np.arange(2))
    assert kept > 0.99


def test_missing_split_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "launch/studies/daa_mini_detail.py", "--task", "noise", "--split", "test",
                        "--arms", "baseline", "--data", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("error: no split at")
