"""Inference and evaluation CLIs: tiling, bit depths, errors, no overwriting."""
import numpy as np
import pytest
import torch

from daa import evaluate as evaluate_cli
from daa import restore as restore_cli
from daa.export import load_restorer, save_restorer
from daa.models import build_restorer
from data_shards.imageio import read_image, write_png


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    net = build_restorer("unet", preset="tiny")
    path = tmp_path / "w.safetensors"
    save_restorer(path, net, {"restorer": "unet", "preset": "tiny", "args": {}, "value_range": [0.0, 1.0]})
    return path, net


def _img(h, w, dtype=np.uint8, seed=0):
    peak = 65535 if dtype == np.uint16 else 255
    return (np.random.default_rng(seed).random((h, w, 3)) * peak).astype(dtype)


def test_restore_cli_writes_same_size_and_bit_depth(tmp_path, weights):
    inp = tmp_path / "in"
    write_png(inp / "a.png", _img(20, 27))
    write_png(inp / "b.png", _img(70, 45, np.uint16))
    out = tmp_path / "out"
    assert restore_cli.main(["--weights", str(weights[0]), "--input", str(inp), "--output", str(out),
                             "--tile", "32", "--overlap", "8"]) == 0
    a, b = read_image(out / "a.png"), read_image(out / "b.png")
    assert a.shape == (20, 27, 3) and a.dtype == np.uint8
    assert b.shape == (70, 45, 3) and b.dtype == np.uint16
    # the untiled small image equals x + R(x) computed directly
    net, _ = load_restorer(weights[0])
    x = torch.from_numpy(_img(20, 27).astype(np.float32) / 255).permute(2, 0, 1)[None]
    want = (x + net(x)).clamp(0, 1)[0].permute(1, 2, 0).detach().numpy()
    assert np.abs(a / 255.0 - want).max() <= 0.5 / 255 + 1e-6


def test_tiled_restore_blends_exactly_for_identity_net():
    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    img = torch.rand(3, 100, 77)
    out = restore_cli.restore_image(Zero(), img, tile=32, overlap=8)
    torch.testing.assert_close(out, img)


def test_restore_cli_errors_and_no_overwrite(tmp_path, weights, capsys):
    inp = tmp_path / "in"
    write_png(inp / "a.png", _img(16, 16))
    out = tmp_path / "out"
    w = str(weights[0])
    assert restore_cli.main(["--weights", w, "--input", str(inp), "--output", str(out)]) == 0
    before = (out / "a.png").read_bytes()
    assert restore_cli.main(["--weights", w, "--input", str(inp), "--output", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == before
    assert restore_cli.main(["--weights", str(tmp_path / "nope.safetensors"), "--input", str(inp),
                             "--output", str(out)]) == 2
    assert restore_cli.main(["--weights", w, "--input", str(tmp_path / "missing"), "--output", str(out)]) == 2
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert restore_cli.main(["--weights", w, "--input", str(tmp_path / "bad.png"), "--output",
                             str(tmp_path / "o2"), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("error: ") for line in err) and len(err) == 3


def test_restore_names_an_unsupported_channel_count(tmp_path, weights, capsys):
    """A multispectral (5-channel) TIFF, which OpenCV refuses to decode, is reported by its channel count."""
    tifffile = pytest.importorskip("tifffile")
    inp = tmp_path / "in"
    inp.mkdir()
    tifffile.imwrite(inp / "ms.tif", np.zeros((8, 8, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    assert restore_cli.main(["--weights", str(weights[0]), "--input", str(inp), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ms.tif: unsupported channel count 5" in err[0], err
    assert not (tmp_path / "o").exists()


def test_evaluate_cli(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    a = _img(24, 24)
    write_png(gt / "x.png", a)
    noisy = np.clip(a.astype(int) + np.random.default_rng(1).integers(-10, 11, a.shape), 0, 255).astype(np.uint8)
    write_png(pred / "x.png", noisy)
    csv_path = tmp_path / "m.csv"
    assert evaluate_cli.main(["--pred", str(pred), "--gt", str(gt), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "MEAN" in out and csv_path.read_text().count("\n") == 3
    write_png(gt / "y.png", a)
    assert evaluate_cli.main(["--pred", str(pred), "--gt", str(gt)]) == 2
    assert "no prediction" in capsys.readouterr().err


def test_evaluate_sidd_restores_blocks_with_weights(tmp_path, weights, capsys):
    """--protocol sidd --weights W --input NOISY.mat scores x + R(x) on the blocks, unrounded; without --input it is
    a one-line error, not a traceback."""
    from scipy.io import savemat

    from daa.protocols import score_sidd

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (1, 2, 16, 16, 3), dtype=np.uint8)
    noisy = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    savemat(str(tmp_path / "gt.mat"), {"ValidationGtBlocksSrgb": gt})
    savemat(str(tmp_path / "noisy.mat"), {"ValidationNoisyBlocksSrgb": noisy})
    w = str(weights[0])
    assert evaluate_cli.main(["--protocol", "sidd", "--weights", w, "--gt", str(tmp_path / "gt.mat")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--input" in err and err.count("\n") == 1
    assert evaluate_cli.main(["--protocol", "sidd", "--weights", w, "--input", str(tmp_path / "noisy.mat"),
                              "--gt", str(tmp_path / "gt.mat")]) == 0
    out = capsys.readouterr().out
    net, _ = load_restorer(weights[0])
    x = torch.from_numpy(noisy[0].astype(np.float32) / 255).permute(0, 3, 1, 2)
    with torch.no_grad():
        want = (x + net(x)).clamp(0, 1).permute(0, 2, 3, 1).numpy()[None]
    r = score_sidd(want, gt)
    assert f"2 blocks, PSNR {r['psnr']:.3f} dB, SSIM {r['ssim']:.4f}" in out and f"SSIM-ch {r['ssim_ch']:.4f}" in out
