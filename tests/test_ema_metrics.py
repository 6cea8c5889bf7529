"""EMA by half-life in images; PSNR/SSIM on RGB and Y against scikit-image with explicit value ranges."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from daa import metrics
from daa.ema import EMA, half_life_from_decay
from daa.models import build_restorer


def test_ema_half_life_is_batch_size_independent():
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    a, b = EMA(net, half_life_images=64), EMA(net, half_life_images=64)
    net.weight.data.fill_(1.0)
    for _ in range(8):  # 8 steps of 8 images ...
        a.update(net, 8)
    for _ in range(2):  # ... equal 2 steps of 32 images: one half-life either way
        b.update(net, 32)
    assert a.module.weight.item() == pytest.approx(0.5)
    assert b.module.weight.item() == pytest.approx(0.5)


def test_ema_official_decay_conversion_and_buffers():
    hl = half_life_from_decay(0.9999, 192)
    assert hl == pytest.approx(192 * math.log(0.5) / math.log(0.9999))
    assert 0.5 ** (192 / hl) == pytest.approx(0.9999)
    net = build_restorer("dncnn", preset="tiny")
    ema = EMA(net, hl)
    net(torch.rand(2, 3, 8, 8))  # train-mode forward moves BatchNorm running stats
    ema.update(net, 192)
    for (n, b), (_, be) in zip(net.named_buffers(), ema.module.named_buffers()):
        torch.testing.assert_close(b, be, msg=n)
    assert not any(p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError):
        EMA(net, 0)


def test_psnr_matches_skimage_in_both_value_ranges():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 20, 24, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    want = [peak_signal_noise_ratio(x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy(),
                                    data_range=1.0) for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.psnr(a, b), want, rtol=1e-10)
    np.testing.assert_allclose(metrics.psnr(a * 2 - 1, b * 2 - 1, (-1, 1)), want, rtol=1e-6)


def test_ssim_and_y_channel():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 32, 32, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    an, bn = a[0].permute(1, 2, 0).double().numpy(), b[0].permute(1, 2, 0).double().numpy()
    want = structural_similarity(an, bn, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert metrics.ssim(a, b)[0] == pytest.approx(want)
    ya, yb = metrics.rgb_to_y(an), metrics.rgb_to_y(bn)
    assert ya.min() >= 16 - 1e-9 and ya.max() <= 235 + 1e-9
    assert metrics.psnr_y(a, b)[0] == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255))
    assert metrics.psnr(a, a)[0] == math.inf
    assert metrics.ssim_y(a, a)[0] == pytest.approx(1.0)
    m = metrics.all_metrics(a, b)
    assert set(m) == {"psnr", "ssim", "psnr_y", "ssim_y"}


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="value_range"):
        metrics.psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), (1, 0))
    with pytest.raises(ValueError, match="3, H, W"):
        metrics.ssim(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8))
