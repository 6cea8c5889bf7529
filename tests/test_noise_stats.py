"""data_shards.noise_stats on fields whose statistics are known, and the camera-noise ISP options they calibrate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from data_shards import noise_stats as ns
from data_shards.degrade import TARGET_PROFILES, degrade, target_profile
from data_shards.degrade.noise import camera_noise


def _field(shape=(4, 64, 64, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.05


def test_white_noise_statistics():
    s = ns.field_stats(list(_field()), "awgn", "pairs")
    assert s.sigma_255 == pytest.approx(0.05 * 255, rel=0.02)
    assert abs(s.lag1) < 0.02
    assert s.high_band == pytest.approx(1 - np.pi / 16, abs=0.02)  # the disc of radius 0.25 in the unit square
    assert s.low_band == pytest.approx(np.pi / 64, abs=0.02)
    assert s.chroma == pytest.approx(2 / 3, abs=0.02)


def test_grey_and_blurred_noise():
    grey = np.repeat(_field((4, 64, 64, 1)), 3, axis=-1)
    assert ns.field_stats(list(grey), "grey", "pairs").chroma == pytest.approx(0.0, abs=1e-6)
    blurred = np.stack([ndimage.gaussian_filter(f, (1.5, 1.5, 0)) for f in _field()])
    s = ns.field_stats(list(blurred), "blur", "pairs")
    assert s.lag1 > 0.7 and s.high_band < 0.05 and s.low_band > 0.3


def test_flat_estimator_agrees_with_pairs_on_a_smooth_image():
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    clean = np.stack([0.3 + 0.2 * yy, 0.5 + 0.1 * xx, 0.4 + 0.0 * xx], -1).astype(np.float32)  # planes: removed
    noisy = clean + _field((128, 128, 3))
    a, b = ns.pair_stats([noisy], [clean], "x"), ns.flat_stats([noisy], "x")
    assert b.sigma_255 == pytest.approx(a.sigma_255, rel=0.1)
    assert abs(b.lag1 - a.lag1) < 0.05 and abs(b.chroma - a.chroma) < 0.05
    with pytest.raises(ValueError, match="smaller than one"):
        ns.flat_blocks(noisy[:16, :16], block=32)


def test_isp_options_act_on_the_noise_only():
    yy = np.mgrid[0:64, 0:64][0] / 64.0  # a smooth image: the demosaic round trip is exact on it, only noise differs
    img = np.stack([0.3 + 0.3 * yy, 0.5 + 0.0 * yy, 0.6 - 0.2 * yy], -1).astype(np.float32)
    base, p0 = camera_noise(img, np.random.default_rng(5), jpeg_enabled=False)
    same, _ = camera_noise(img, np.random.default_rng(5), jpeg_enabled=False, chroma_blur=0.0, sharpen=0.0)
    np.testing.assert_array_equal(base, same)  # defaults unchanged: the parameter draws are the same
    cb, p = camera_noise(img, np.random.default_rng(5), jpeg_enabled=False, chroma_blur=1.5)
    sh, _ = camera_noise(img, np.random.default_rng(5), jpeg_enabled=False, sharpen=1.5)
    st = {k: ns.field_stats([v - img], k, "pairs") for k, v in (("base", base), ("cb", cb), ("sh", sh))}
    assert st["cb"].chroma < st["base"].chroma - 0.1  # chroma noise reduction
    assert st["sh"].high_band > st["base"].high_band + 0.05  # sharpening adds fine grain
    assert p["chroma_blur"] == 1.5 and p0["chroma_blur"] == 0.0


def test_target_profiles():
    img = np.random.default_rng(2).uniform(0, 1, (32, 32, 3)).astype(np.float32)
    a, pa = degrade(img, "denoise", "target", np.random.default_rng(0), profile="sidd")
    b, _ = degrade(img, "denoise", "target", np.random.default_rng(0), **TARGET_PROFILES["denoise"]["sidd"])
    np.testing.assert_array_equal(a, b)
    assert pa["jpeg_quality"] is None and pa["sharpen"] == target_profile("denoise", "sidd")["sharpen"]
    with pytest.raises(ValueError, match="unknown target profile 'nope'"):
        degrade(img, "denoise", "target", np.random.default_rng(0), profile="nope")
    with pytest.raises(ValueError, match="source domain"):
        degrade(img, "denoise", "source", np.random.default_rng(0), profile="sidd")


def test_cli_table(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        clean = rng.integers(60, 200, (64, 64, 3)).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(tmp_path / f"s{i}_mean.png")
        Image.fromarray(noisy).save(tmp_path / f"s{i}_real.png")
    assert ns.main(["--pairs", f"toy={tmp_path}", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "| toy | pairs | 2 |" in out and "| toy | flat | 2 |" in out
    with pytest.raises(SystemExit):
        ns.main(["--pairs", f"none={tmp_path / 'missing'}"])


def test_synthetic_sets_pair_with_the_camera_reference(monkeypatch, tmp_path):
    """reference=camera pairs the noisy crops with the camera's noise-free rendering: the same noisy images, other
    clean ones, and a noise-free degradation then measures no noise at all."""
    from PIL import Image

    from data_shards import corpus as photos_mod

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (300, 300, 3)).astype(np.uint8)).save(tmp_path / "e.png")
    monkeypatch.setattr(photos_mod, "load_manifest", lambda d: [{"file": "e.png", "split": "E"}])
    quiet = "shot_range=[1e-12,1e-12];jpeg_enabled=false"
    (_, n0, c0), (_, n1, c1), (_, n2, c2) = ns.synthetic_sets(
        str(tmp_path), ["a=denoise:target", "b=denoise:target:reference=camera", f"c=denoise:target:{quiet};"
                        "reference=camera"], 1, 0)
    assert np.array_equal(n0[0], n1[0]) and not np.array_equal(c0[0], c1[0])
    assert np.abs(n2[0] - c2[0]).max() <= 1 / 255 + 1e-6 < np.abs(n2[0] - c0[0]).max()


def test_dimmer_light_profiles_add_more_noise():
    """sidd < sidd-dim < sidd-dark in noise on a flat grey patch (where the noise-free round trip is ~exact)."""
    img = np.full((64, 64, 3), 0.4, np.float32)
    std = {}
    for prof in ("sidd", "sidd-dim", "sidd-dark"):
        std[prof] = np.mean([np.std(degrade(img, "denoise", "target", np.random.default_rng(s), profile=prof)[0] - img)
                             for s in range(6)])
    assert std["sidd"] < std["sidd-dim"] < std["sidd-dark"]
