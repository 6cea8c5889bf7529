"""daa.protocols / daa-evaluate --protocol: SIDD .mat blocks (MATLAB v5 and v7.3) scored as eva_denoise.m (float
PSNR, MATLAB's volumetric SSIM, checked against an independent implementation), the RealBlur alignment on a known
shift, pair by pair, with non-converged alignments counted, the Y-channel protocol, and the option errors."""
from __future__ import annotations

import csv
import weakref

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from daa import evaluate as evaluate_cli
from daa import protocols
from daa.metrics import ssim_matlab
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


def _matlab_ssim_reference(x, y, data_range=1.0, sigma=1.5):
    """MATLAB's ssim on a 2-D or 3-D array written out directly, independent of daa.metrics: every axis padded by
    replication (np.pad "edge") by ceil(3σ) = 5, the full non-separable 11^d Gaussian kernel applied by a sliding
    window, C1 = (0.01 L)², C2 = (0.03 L)², the map averaged over every element."""
    r = int(np.ceil(3 * sigma))
    grids = np.meshgrid(*[np.arange(-r, r + 1)] * x.ndim, indexing="ij")
    k = np.exp(-sum(gr.astype(float) ** 2 for gr in grids) / (2 * sigma ** 2))
    k /= k.sum()

    def g(v):
        w = np.lib.stride_tricks.sliding_window_view(np.pad(v, r, mode="edge"), k.shape)
        return np.tensordot(w, k, axes=x.ndim)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = g(x), g(y)
    sx, sy, sxy = g(x * x) - mx ** 2, g(y * y) - my ** 2, g(x * y) - mx * my
    return float(np.mean((2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sx + sy + c2))))


def _noisy(gt, sd=0.03, seed=1):
    """Float predictions in [0, 1], not on the uint8 grid, with noise independent per channel."""
    return np.clip(gt / 255.0 + np.random.default_rng(seed).normal(0, sd, gt.shape), 0, 1).astype(np.float32)


def test_matlab_ssim_is_volumetric_and_matches_an_independent_implementation():
    gt = ndimage.gaussian_filter(_blocks(0)[0, 0] / 255.0, (1.5, 1.5, 0))  # some structure, channels differ
    pred = _noisy(gt * 255.0, 0.05).astype(np.float64)
    vol = ssim_matlab(pred, gt)
    assert vol == pytest.approx(_matlab_ssim_reference(pred, gt), abs=1e-10)
    assert ssim_matlab(pred[..., 0], gt[..., 0]) == pytest.approx(_matlab_ssim_reference(pred[..., 0], gt[..., 0]),
                                                                  abs=1e-10)  # the 2-D path (imgaussfilt)
    per_channel = np.mean([ssim_matlab(pred[..., c], gt[..., c]) for c in range(3)])
    assert abs(vol - per_channel) > 0.01  # the colour axis is inside the window, not averaged over
    # a grey image in three channels: replicating a constant axis leaves the filter 2-D, so the volume's SSIM is the
    # 2-D one (a window that zero-padded or cropped the colour axis would not give this)
    grey, grey_pred = np.repeat(gt[..., :1], 3, -1), np.repeat(pred[..., :1], 3, -1)
    assert ssim_matlab(grey_pred, grey) == pytest.approx(ssim_matlab(pred[..., 0], gt[..., 0]), abs=1e-12)
    assert ssim_matlab(gt, gt) == pytest.approx(1.0) and ssim_matlab(gt * 255, pred * 255, 255.0) == \
        pytest.approx(ssim_matlab(gt, pred), abs=1e-12)


@pytest.mark.parametrize("save", [_save_v5, _save_v73])
def test_sidd_blocks_both_formats(tmp_path, save):
    gt = _blocks(0, (2, 2, 24, 24, 3))
    save(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    np.testing.assert_array_equal(load_blocks(tmp_path / "gt.mat"), gt)
    pred = _noisy(gt)
    save(tmp_path / "pred.mat", "Idenoised", pred)  # float, as the official .mat
    r = score_sidd(load_blocks(tmp_path / "pred.mat"), gt)
    # as eva_denoise.m: per block on the unrounded floats against im2single(gt), averaged
    p64, g64 = pred.astype(np.float64), gt / 255.0
    mse = ((p64 - g64) ** 2).mean(axis=(2, 3, 4))
    assert r["blocks"] == 4 and r["psnr"] == pytest.approx(float(np.mean(10 * np.log10(1 / mse))), abs=1e-6)
    rounded = ((np.round(p64 * 255) - gt) ** 2).mean(axis=(2, 3, 4))
    assert abs(r["psnr"] - float(np.mean(10 * np.log10(255 ** 2 / rounded)))) > 1e-4  # rounding would show
    ref = np.mean([_matlab_ssim_reference(p64[i, k], g64[i, k]) for i in range(2) for k in range(2)])
    assert r["ssim"] == pytest.approx(ref, abs=1e-6)
    ch = np.mean([structural_similarity(np.round(p64[i, k] * 255), gt[i, k].astype(float), data_range=255,
                                        channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False) for i in range(2) for k in range(2)])
    assert r["ssim_ch"] == pytest.approx(ch, abs=1e-9)
    assert score_sidd(gt, gt)["psnr"] == 100.0 and score_sidd(gt, gt)["ssim"] == pytest.approx(1.0)


def test_sidd_refuses_floats_outside_unit_range(tmp_path, capsys):
    gt = _blocks(0)
    with pytest.raises(ProtocolError, match=r"outside \[0, 1\]; they look like 0-255"):
        score_sidd(gt.astype(np.float32), gt)  # floats saved in 0-255: refused, not saturated to white
    bad = _noisy(gt)
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ProtocolError, match="outside"):
        score_sidd(bad, gt)
    with pytest.raises(ProtocolError, match="int64"):
        score_sidd(gt.astype(np.int64), gt)
    _save_v5(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    _save_v5(tmp_path / "pred.mat", "Idenoised", _noisy(gt) * 1.2)
    assert evaluate_cli.main(["--protocol", "sidd", "--pred", str(tmp_path / "pred.mat"), "--gt",
                              str(tmp_path / "gt.mat")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: predictions: float values span") and err.count("\n") == 1


def test_sidd_cli_and_errors(tmp_path, capsys):
    gt = _blocks(0)
    _save_v5(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    _save_v5(tmp_path / "pred.mat", "x", gt)
    assert evaluate_cli.main(["--protocol", "sidd", "--pred", str(tmp_path / "pred.mat"), "--gt",
                              str(tmp_path / "gt.mat"), "--csv", str(tmp_path / "s.csv")]) == 0
    assert "6 blocks, PSNR 100.000 dB, SSIM 1.0000" in capsys.readouterr().out
    row = list(csv.DictReader(open(tmp_path / "s.csv")))[-1]
    assert row["protocol"] == "sidd" and float(row["ssim"]) == 1.0 and float(row["ssim_ch"]) == 1.0
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
    # options that do not fit together: one line each, before any file is read
    mats = ["--gt", str(tmp_path / "gt.mat")]
    for args, says in ((["--weights", "w.safetensors"], "needs --input"),
                       (["--input", "n.mat"], "needs --weights"),
                       (["--pred", "p.mat", "--weights", "w.safetensors", "--input", "n.mat"], "not both"),
                       ([], "needs --pred")):
        assert evaluate_cli.main(["--protocol", "sidd", *args, *mats]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert evaluate_cli.main(["--pred", str(tmp_path), "--weights", "w", *mats]) == 2
    assert "sidd only" in capsys.readouterr().err


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


def _write_pairs(tmp_path, n, scene_seed=3):
    for d in ("pred", "gt"):
        (tmp_path / d).mkdir(exist_ok=True)
    for i in range(n):
        gt = _scene(scene_seed + i, size=64)
        write_png(tmp_path / "gt" / f"p{i}.png", np.round(gt * 255).astype(np.uint8))
        write_png(tmp_path / "pred" / f"p{i}.png", np.round(np.roll(gt, 1, axis=0) * 255).astype(np.uint8))


def test_realblur_scores_pair_by_pair(tmp_path, monkeypatch):
    """Each pair is read, scored and released before the next is read: memory bounded by one pair."""
    _write_pairs(tmp_path, 3)
    reads, seen, live = [0], [], []
    real_read, real_score = evaluate_cli.read_image, protocols.score_realblur

    def counting_read(path):
        reads[0] += 1
        return real_read(path)

    def watching_score(pred, gt, warp):  # numpy frees on the last reference: no gc pass needed
        seen.append(reads[0])
        live.append(sum(r() is not None for r in refs))  # arrays of earlier pairs still alive
        refs.extend([weakref.ref(pred), weakref.ref(gt)])
        return real_score(pred, gt, warp)

    refs = []
    monkeypatch.setattr(evaluate_cli, "read_image", counting_read)
    monkeypatch.setattr(protocols, "score_realblur", watching_score)
    rows = evaluate_cli.evaluate_realblur(str(tmp_path / "pred"), str(tmp_path / "gt"), "translation")
    assert len(rows) == 3 and seen == [2, 4, 6] and live == [0, 0, 0]


def test_realblur_counts_alignments_that_do_not_converge(tmp_path, capsys):
    _write_pairs(tmp_path, 2)
    write_png(tmp_path / "pred" / "p1.png", np.full((64, 64, 3), 128, np.uint8))  # flat: nothing to correlate
    out_csv = tmp_path / "r.csv"
    assert evaluate_cli.main(["--protocol", "realblur", "--align", "translation", "--pred", str(tmp_path / "pred"),
                              "--gt", str(tmp_path / "gt"), "--csv", str(out_csv)]) == 0
    cap = capsys.readouterr()
    assert "p1: ECC alignment (translation) did not converge; scored unaligned" in cap.err
    assert "p0" not in cap.err and "did not converge on 1 of 2 pairs" in cap.out
    rows = {r["image"]: r for r in csv.DictReader(open(out_csv))}
    assert (rows["p0"]["unaligned"], rows["p1"]["unaligned"], rows["MEAN"]["unaligned"]) == ("0", "1", "1")


def test_csv_of_an_older_layout_stays_readable(tmp_path, capsys):
    gt = _blocks(0)
    _save_v5(tmp_path / "gt.mat", "ValidationGtBlocksSrgb", gt)
    old = tmp_path / "old.csv"
    old.write_text("pred,gt,protocol,image,psnr,ssim,psnr_y,ssim_y\nx,y,pairs,a,30,0.9,31,0.91\n")
    assert evaluate_cli.main(["--protocol", "sidd", "--pred", str(tmp_path / "gt.mat"), "--gt",
                              str(tmp_path / "gt.mat"), "--csv", str(old)]) == 0
    assert "has no column ssim_ch" in capsys.readouterr().err
    rows = list(csv.DictReader(open(old)))
    assert len(rows) == 2 and rows[0]["psnr"] == "30" and rows[1]["protocol"] == "sidd" and None not in rows[1]
