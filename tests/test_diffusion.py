"""Noise schedule: official table values, continuous ᾱ within [ᾱ_t, ᾱ_{t−1}], t range, q_sample."""
import pytest
import torch

from daa.diffusion import NoiseSchedule, ScheduleConfig, q_sample


def test_linear_schedule_matches_official_table():
    g = NoiseSchedule().gammas
    assert len(g) == 1000
    for idx, want in [(0, 0.999999), (99, 0.95155), (899, 0.017210), (998, 0.0066895), (999, 0.0066226)]:
        assert g[idx].item() == pytest.approx(want, rel=1e-4)


def test_continuous_alpha_bar_lies_between_neighbours():
    s = NoiseSchedule()
    t, g = s.sample_gammas(20000, torch.Generator().manual_seed(0))
    lo, hi = s.gammas[t].float(), s.gammas[t - 1].float()
    assert (g >= lo - 1e-7).all() and (g <= hi + 1e-7).all()
    assert t.min() == 1 and t.max() == 999  # randint(1, T): T itself is never drawn
    frac = (g - lo) / (hi - lo)
    assert 0.45 < frac.mean() < 0.55  # uniform within the interval, not pinned to an end


def test_discrete_and_t_range_options():
    s = NoiseSchedule(ScheduleConfig(continuous=False, t_min=900, t_max=999))
    t, g = s.sample_gammas(1000, torch.Generator().manual_seed(0))
    assert t.min() >= 900 and t.max() <= 999
    torch.testing.assert_close(g, s.gammas[t].float())


def test_bad_schedule_configs():
    with pytest.raises(ValueError, match="t_min"):
        ScheduleConfig(t_min=0)
    with pytest.raises(ValueError, match="t_max"):
        ScheduleConfig(t_max=1000)
    with pytest.raises(ValueError, match="schedule must be"):
        ScheduleConfig(schedule="quad")


def test_cosine_schedule_is_decreasing():
    g = NoiseSchedule(ScheduleConfig(schedule="cosine")).gammas
    assert (g[1:] < g[:-1]).all() and 0 < g[-1] < g[0] < 1


def test_q_sample():
    y, e = torch.rand(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    g = torch.tensor([1.0, 0.25])
    out = q_sample(y, g, e)
    torch.testing.assert_close(out[0], y[0])
    torch.testing.assert_close(out[1], 0.5 * y[1] + 0.75**0.5 * e[1])
