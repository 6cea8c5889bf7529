"""daa.protocols / daa-evaluate --protocol: SIDD .mat blocks (MATLAB v5 and v7.3) scored per block on uint8, the
RealBlur alignment on a known shift, the Y-channel protocol."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from daa import evaluate as evaluate_cli
from daa.protocols import ProtocolError, load_blocks, score_realblur, score_sidd
from data_shards.imageio import write_png


def _blocks(seed=0, shape=(2, 3, 32, 32, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _save_v5(path, name, a):
    from scipy.io import savemat

    savemat(str(path), {name: a})


def _save_v73(path, name, a):
    """A MATLAB v7.3 file: HDF5 after a 512-byte text header, the array stored with its dimensions reversed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(name, data=np.transpose(a, tuple(range(a.ndim - 1, -1, -1))))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


@pytest.mark.parametrize("save", [_save_v5, _save_v73])
def test_sidd_blocks_both_formats(tmp_path, save):
    gt = _blocks(0)
    save(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    np.testing.assert_array_equal(load_blocks(tmp_path / "gt.mat"), gt)
    noisy = np.clip(gt.astype(int) + np.random.default_rng(1).integers(-10, 11, gt.shape), 0, 255).astype(np.uint8)
    save(tmp_path / "pred.mat", "Idenoised", noisy.astype(np.float32) / 255.0)  # float, as the official .mat
    r = score_sidd(load_blocks(tmp_path / "pred.mat"), gt)
    # per-block PSNR on uint8, averaged: the same as computing it by hand
    mse = ((noisy.astype(float) - gt.astype(float)) ** 2).mean(axis=(2, 3, 4))
    assert r["blocks"] == 6 and r["psnr"] == pytest.approx(float(np.mean(10 * np.log10(255 ** 2 / mse))), abs=1e-9)
    assert 0 < r["ssim"] < 1 and score_sidd(gt, gt)["psnr"] == 100.0


def test_sidd_cli_and_errors(tmp_path, capsys):
    gt = _blocks(0)
    _save_v5(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    _save_v5(tmp_path / "pred.mat", "x", gt)
    assert evaluate_cli.main(["--protocol", "sidd", "--pred", str(tmp_path / "pred.mat"), "--gt",
                              str(tmp_path / "gt.mat"), "--csv", str(tmp_path / "s.csv")]) == 0
    assert "6 blocks, PSNR 100.000 dB" in capsys.readouterr().out and "sidd" in (tmp_path / "s.csv").read_text()
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    assert evaluate_cli.main(["--protocol", "sidd", "--pred", str(tmp_path / "junk.mat"), "--gt",
                              str(tmp_path / "gt.mat")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "junk.mat" in err and err.count("\n") == 1
    _save_v5(tmp_path / "two.mat", "a", gt)
    with pytest.raises(ProtocolError, match="shape"):
        score_sidd(gt[:1], gt)
    with pytest.raises(ProtocolError, match="no variable 'nope'"):
        load_blocks(tmp_path / "two.mat", key="nope")


def _scene(seed=3, size=96):
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.random((size, size, 3)), (2, 2, 0)) * 1.6 - 0.3, 0, 1)


@pytest.mark.parametrize("warp", ["translation", "homography"])
def test_realblur_alignment_recovers_a_known_shift(warp):
    big = _scene(size=112)
    noisy = np.clip(big + np.random.default_rng(4).normal(0, 0.01, big.shape), 0, 1)
    gt, pred = big[8:-8, 8:-8], noisy[8:-8, 8:-8]
    shifted = noisy[5:-11, 10:-6]  # the same view, captured 3 rows higher and 2 columns to the right
    ref = score_realblur(pred, gt, warp)["psnr"]
    plain = 10 * np.log10(1 / np.mean((shifted - gt) ** 2))
    aligned = score_realblur(shifted, gt, warp)
    assert aligned["psnr"] > plain + 5  # alignment matters
    assert abs(aligned["psnr"] - ref) < 1.0  # and recovers the unshifted score
    m = np.array(aligned["warp"])
    assert abs(m[0, 2] - (-2)) < 0.1 and abs(m[1, 2] - 3) < 0.1  # the shift it found (x, y)


def test_realblur_and_spa_cli(tmp_path, capsys):
    gt = _scene()
    for d in ("pred", "gt"):
        (tmp_path / d).mkdir()
    write_png(tmp_path / "gt" / "a.png", np.round(gt * 255).astype(np.uint8))
    write_png(tmp_path / "pred" / "a.png", np.round(np.roll(gt, 2, axis=1) * 255).astype(np.uint8))
    assert evaluate_cli.main(["--protocol", "realblur", "--align", "translation", "--pred", str(tmp_path / "pred"),
                              "--gt", str(tmp_path / "gt")]) == 0
    out = capsys.readouterr().out
    assert "protocol realblur" in out and "PSNR-Y" not in out
    assert evaluate_cli.main(["--protocol", "spa", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]) == 0
    out = capsys.readouterr().out
    assert "PSNR-Y" in out and "SSIM-Y" in out and " PSNR " not in out.splitlines()[0]
