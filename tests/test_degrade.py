"""data_shards.degrade: the six degradations' statistics, determinism, ranges, params and errors."""
import json

import numpy as np
import pytest
import skimage.data as skd

from data_shards.degrade import DOMAINS, TASKS, degrade, degrade_pair
from data_shards.degrade.blur import line_kernel, linear_motion_kernel, shake_kernel
from data_shards.degrade.noise import camera_noise

COMBOS = [(t, d) for t in TASKS for d in DOMAINS]


def _psnr(x, ref):
    return 10 * np.log10(1.0 / np.mean((np.clip(x, 0, 1) - ref) ** 2))


@pytest.fixture(scope="module")
def photo():
    return skd.coffee().astype(np.float32) / 255.0


def _crops(photo, n, size=128):
    rng = np.random.default_rng(123)
    h, w = photo.shape[:2]
    for _ in range(n):
        y, x = rng.integers(0, h - size), rng.integers(0, w - size)
        yield photo[y : y + size, x : x + size]


def test_awgn_sigma_recovered_on_flat_image():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    for seed in range(5):
        out, p = degrade(flat, "denoise", "source", np.random.default_rng(seed))
        if p["sigma"] > 5 / 255:
            assert np.std(out - flat) == pytest.approx(p["sigma"], rel=0.03)
        assert 0.0 <= p["sigma"] <= 75 / 255
    out, p = degrade(flat, "denoise", "source", np.random.default_rng(0), sigma=0.3)
    assert p["sigma"] == 0.3 and np.std(out - flat) == pytest.approx(0.3, rel=0.03)
    assert out.min() < 0 and out.max() > 1  # the paper's source noise is not clipped
    assert abs(float(np.mean(out - flat))) < 0.01


@pytest.mark.parametrize("task,domain", COMBOS)
def test_seeded_determinism(photo, task, domain):
    crop = photo[:64, :64]
    a, pa = degrade(crop, task, domain, np.random.default_rng(7))
    b, pb = degrade(crop, task, domain, np.random.default_rng(7))
    c, _ = degrade(crop, task, domain, np.random.default_rng(8))
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("task,domain", COMBOS)
@pytest.mark.parametrize("shape", [(64, 64, 3), (33, 47, 3)])
def test_outputs_shape_range_params(photo, task, domain, shape):
    crop = photo[: shape[0], : shape[1]]
    out, p = degrade(crop, task, domain, np.random.default_rng(3))
    assert out.shape == shape and out.dtype == np.float32 and np.isfinite(out).all()
    if (task, domain) != ("denoise", "source"):
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert isinstance(p["name"], str) and p["task"] == task and p["domain"] == domain
    assert json.loads(json.dumps(p)) == p  # JSON round trip, nothing numpy inside


def test_target_noise_psnr_matches_notes(photo):
    # notes/data.md §3.2: ~22.7 dB mean, p10 18.9, p90 27.3 over many crops.
    ps = [_psnr(degrade(c, "denoise", "target", np.random.default_rng(s))[0], c)
          for s, c in enumerate(_crops(photo, 16))]
    assert all(15.0 < v < 32.0 for v in ps), ps
    assert 21.0 < np.mean(ps) < 25.0, np.mean(ps)


def test_camera_pipeline_roundtrip_is_near_identity(photo):
    # With (almost) no noise and no JPEG, unprocess -> process should give the photo back: the gains, CCM, gamma and
    # tone curve are all re-applied; only bilinear demosaicking and near-white clipping lose detail.
    crop = photo[100:228, 200:328]
    out, _ = camera_noise(crop, np.random.default_rng(0), shot_range=(1e-12, 1e-12), jpeg_enabled=False)
    assert _psnr(out, crop) > 30.0
    assert abs(float(out.mean() - crop.mean())) < 0.02  # no colour/brightness drift


@pytest.mark.parametrize("profile", [None, "sidd"])
def test_camera_reference_is_the_noise_free_rendering(photo, profile):
    """reference='camera': the same noisy draws; the clean image is the ISP of the noise-free mosaic, so without
    noise the output equals it exactly, whereas the photo differs by the demosaic's loss."""
    crop = photo[100:228, 200:328]
    out, params = degrade(crop, "denoise", "target", np.random.default_rng(3), profile)
    out2, ref, params2 = degrade_pair(crop, "denoise", "target", np.random.default_rng(3), profile, reference="camera")
    assert np.array_equal(out, out2) and params == params2
    out3, clean3, _ = degrade_pair(crop, "denoise", "target", np.random.default_rng(3), profile)
    assert np.array_equal(out3, out) and np.array_equal(clean3, crop)
    quiet = {"shot_range": (1e-12, 1e-12), "jpeg_enabled": False}
    nf, ref0, _ = degrade_pair(crop, "denoise", "target", np.random.default_rng(4), profile, "camera", **quiet)
    assert _psnr(nf, ref0) > 60.0 and _psnr(ref0, crop) < 50.0
    assert ref.dtype == np.float32 and ref.shape == crop.shape and 0.0 <= ref.min() and ref.max() <= 1.0


def test_camera_reference_errors(photo):
    crop = photo[:64, :64]
    with pytest.raises(ValueError, match="camera-noise target only"):
        degrade_pair(crop, "derain", "target", np.random.default_rng(0), reference="camera")
    with pytest.raises(ValueError, match="unknown reference 'isp'"):
        degrade_pair(crop, "denoise", "target", np.random.default_rng(0), reference="isp")


def _lag1_corr(noise):
    return float(np.mean([np.corrcoef(noise[:, :-1, c].ravel(), noise[:, 1:, c].ravel())[0, 1] for c in range(3)]))


def test_target_noise_is_spatially_correlated_unlike_awgn():
    # Bilinear demosaicking spreads each raw sample over its neighbours, so the target noise is low-pass/blotchy;
    # AWGN is white.
    flat = np.full((128, 128, 3), 0.4, np.float32)
    tgt, _ = degrade(flat, "denoise", "target", np.random.default_rng(1), quality_range=(95, 95))
    src, _ = degrade(flat, "denoise", "source", np.random.default_rng(1), sigma=0.1)
    assert _lag1_corr(tgt - tgt.mean(axis=(0, 1))) > 0.3
    assert abs(_lag1_corr(src - flat)) < 0.05


@pytest.mark.parametrize("seed", range(6))
def test_blur_kernels_normalised_nonnegative(seed):
    rng = np.random.default_rng(seed)
    for k in (linear_motion_kernel(rng)[0], shake_kernel(rng)[0]):
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.min() >= 0.0 and k.sum() == pytest.approx(1.0, abs=1e-5)
    k, p = shake_kernel(rng)
    ys, xs = np.mgrid[: k.shape[0], : k.shape[1]]
    c = (k.shape[0] - 1) / 2
    # centred on its centroid, so blurred images are not shifted against their ground truth
    assert float((k * ys).sum()) == pytest.approx(c, abs=1e-3) and float((k * xs).sum()) == pytest.approx(c, abs=1e-3)
    assert 6.0 <= p["path_length"] <= 15.0


def test_line_kernel_geometry():
    k = line_kernel(9.0, 0.0)  # horizontal: one row of ~1s
    assert k.sum() == pytest.approx(9.0 + 0.0, abs=1.0)
    row = k.shape[0] // 2
    assert k[row].sum() > 0.9 * k.sum()
    kv = line_kernel(9.0, np.pi / 2)
    assert np.allclose(kv, k.T, atol=1e-6)


def test_target_blur_saturation_makes_streaks():
    img = np.full((64, 64, 3), 0.3, np.float32)
    img[30:34, 30:34] = 1.0  # a clipped light source
    on, p_on = degrade(img, "deblur", "target", np.random.default_rng(0), saturation_prob=1.0)
    off, p_off = degrade(img, "deblur", "target", np.random.default_rng(0), saturation_prob=0.0)
    assert p_on["saturation"] and not p_off["saturation"]
    # the boosted highlight stays white over a larger area after the blur
    assert (on > 0.95).all(axis=-1).sum() > (off > 0.95).all(axis=-1).sum()


def test_target_rain_haze_option(photo):
    crop = photo[:96, :96]
    clear, p1 = degrade(crop, "derain", "target", np.random.default_rng(0))
    hazy, p2 = degrade(crop, "derain", "target", np.random.default_rng(0), haze=True)
    assert not p1["haze"] and p2["haze"] and 0.1 <= p2["beta"] <= 0.6
    assert 2 <= len(p1["layers"]) <= 3 and p1["layers"][0]["kind"] == "far"
    assert _psnr(hazy, crop) < _psnr(clear, crop)


def test_rain_is_additive_and_brightening(photo):
    crop = photo[:96, :96]
    for domain in DOMAINS:
        out, _ = degrade(crop, "derain", domain, np.random.default_rng(0), **({"quality_range": (100, 100)}
                                                                                 if domain == "target" else {}))
        assert float(np.mean(out - crop)) > 0.0  # streaks only add light


@pytest.mark.parametrize("task,domain", [("denoise", "sideways"), ("inpaint", "source"), ("deblur", "Target")])
def test_unknown_task_or_domain(task, domain):
    with pytest.raises(ValueError) as e:
        degrade(np.zeros((8, 8, 3), np.float32), task, domain, np.random.default_rng(0))
    msg = str(e.value)
    assert "\n" not in msg
    assert ("denoise, deblur, derain" in msg) or ("source, target" in msg)


def test_rejects_non_rgb():
    with pytest.raises(ValueError):
        degrade(np.zeros((8, 8), np.float32), "denoise", "source", np.random.default_rng(0))
