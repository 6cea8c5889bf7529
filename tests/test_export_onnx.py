"""`daa-export --onnx`: every registered restorer leaves as an ONNX graph with dynamic batch, H and W that ONNX
Runtime (CPU) runs to PyTorch's x + R(x) within 1e-5; `daa-restore` takes the .onnx file."""
import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from daa import export as export_cli  # noqa: E402
from daa import restore as restore_cli  # noqa: E402
from daa.export import ONNX_OPSET, export_onnx, read_onnx_meta, save_restorer  # noqa: E402
from daa.models import build_restorer, restorer_names  # noqa: E402
from data_shards.imageio import read_image, write_png  # noqa: E402

# two sizes and batches, neither the export example's (2, 37×45); 37×50 is not a multiple of any network's
# size_multiple (4, 8 or 16), so the padded path runs; 32×32 needs no pad
SIZES = [(1, 32, 32), (3, 37, 50)]


def _meta(name):
    return {"restorer": name, "preset": "tiny", "args": {}, "value_range": [0.0, 1.0], "task": "denoise"}


@pytest.mark.parametrize("name", restorer_names())
def test_onnx_matches_pytorch_at_two_sizes(tmp_path, name):
    torch.manual_seed(0)
    net = build_restorer(name, preset="tiny", init="torch").eval()
    path = export_onnx(net, tmp_path / f"{name}.onnx", _meta(name))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] == ONNX_OPSET
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert read_onnx_meta(path)["restorer"] == name
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, h, w in SIZES:
        x = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            want = net.restore(x).numpy()
        got = sess.run(["restored"], {"x": x.numpy()})[0]
        assert got.shape == want.shape
        err = float(np.abs(got - want).max())
        assert err <= 1e-5 * max(1.0, float(np.abs(want).max())), f"{name} at {b}x{h}x{w}: max |err| {err:.2e}"


def test_export_cli_and_restore_from_onnx(tmp_path, capsys):
    torch.manual_seed(0)
    net = build_restorer("unet", preset="tiny", init="torch")
    weights = tmp_path / "w.safetensors"
    save_restorer(weights, net, _meta("unet"))
    out = tmp_path / "r.onnx"
    assert export_cli.main(["--weights", str(weights), "--onnx", str(out)]) == 0
    before = out.read_bytes()
    # nothing overwritten without --overwrite; a wrong suffix and a missing file are one-line errors
    assert export_cli.main(["--weights", str(weights), "--onnx", str(out)]) == 2
    assert export_cli.main(["--weights", str(weights), "--onnx", str(tmp_path / "r.bin")]) == 2
    assert export_cli.main(["--weights", str(tmp_path / "none.safetensors"), "--onnx", str(tmp_path / "n.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err), err
    assert "already exists" in err[0] and ".onnx" in err[1] and "not found" in err[2]
    assert out.read_bytes() == before
    # daa-restore gives the same images from the .onnx file as from the safetensors it came from
    inp = tmp_path / "in"
    write_png(inp / "a.png", (np.random.default_rng(0).random((20, 27, 3)) * 65535).astype(np.uint16))
    for w, o in ((weights, "o_pt"), (out, "o_onnx")):
        assert restore_cli.main(["--weights", str(w), "--input", str(inp), "--output", str(tmp_path / o)]) == 0
    a, b = read_image(tmp_path / "o_pt" / "a.png"), read_image(tmp_path / "o_onnx" / "a.png")
    assert a.shape == b.shape == (20, 27, 3) and a.dtype == np.uint16
    assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 1  # 16-bit levels
    # a file that is not ONNX is refused in one line
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert restore_cli.main(["--weights", str(bad), "--input", str(inp), "--output", str(tmp_path / "o3")]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
