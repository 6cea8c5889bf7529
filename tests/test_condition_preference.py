"""daa.condition_preference on constructed cases whose answer is known (the stub ε_θ of test_diagnose: its noise
loss is ∝ ‖z − c‖², c = the real-output slot, so the loss is lowest when the real slot holds z)."""
from __future__ import annotations

import math

import pytest

from daa.condition_preference import VARIANTS, preference_batch, run_preferences, summarize, table_md
from tests.test_diagnose import _setup


def test_stub_that_rewards_the_clean_image():
    obj, x_s, y_s, x_r, y_r, d = _setup("clean")
    base, diff = preference_batch(obj, x_s, y_s, x_r, y_r, 1.0, d)
    assert base > 0
    assert diff["clean − restored"] == pytest.approx(-base, rel=1e-5)  # the loss is 0 at the clean image
    assert diff["blur(clean) − clean"] > 0  # anything else, blurred clean included, costs more
    assert diff["synthetic: clean − restored"] == pytest.approx(0.0, abs=1e-6)  # the stub ignores that slot


def test_stub_that_rewards_smoothing():
    obj, x_s, y_s, x_r, y_r, d = _setup("smooth")
    base, diff = preference_batch(obj, x_s, y_s, x_r, y_r, 1.0, d)
    assert diff["blur(restored) − restored"] == pytest.approx(-base, rel=1e-5)
    assert diff["clean − restored"] > 0  # random clean images are far from the blurred output


def test_alpha_scales_every_difference():
    obj, x_s, y_s, x_r, y_r, d = _setup("clean")
    b1, d1 = preference_batch(obj, x_s, y_s, x_r, y_r, 1.0, d)
    b2, d2 = preference_batch(obj, x_s, y_s, x_r, y_r, 2.5, d)
    assert b2 == pytest.approx(2.5 * b1, rel=1e-5)
    assert all(d2[k] == pytest.approx(2.5 * d1[k], rel=1e-4, abs=1e-7) for k in VARIANTS)


def test_stub_that_ignores_conditions_prefers_nothing():
    obj, x_s, y_s, x_r, y_r, _ = _setup("none")
    res = run_preferences(obj, dict(x_s=x_s, y_s=y_s, x_r=x_r, y_r=y_r), alpha=1.0, batches=2, batch=4)
    assert list(res)[-1] == "all" and len(res) == 5
    for r in res.values():
        assert all(abs(r[k][0]) < 1e-4 for k in VARIANTS)


def test_summary_in_percent_with_standard_error():
    rows = [(2.0, {k: -0.2 for k in VARIANTS}), (2.0, {k: -0.6 for k in VARIANTS})]
    s = summarize(rows)
    m, se = s["clean − restored"]
    assert m == pytest.approx(-20.0)  # mean −0.4 of a mean loss 2.0
    assert se == pytest.approx(10.0)  # sd 0.283 / √2 = 0.2 → 10 %
    one = summarize(rows[:1])
    assert math.isnan(one["clean − restored"][1])  # one batch: no standard error
    assert "–" not in table_md({"all": s}) and "-20.00 ± 10.00" in table_md({"all": s})
