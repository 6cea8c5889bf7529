"""Fused GroupNorm + scale/shift + SiLU (kernels/group_norm_silu.py): Triton == reference, forward and every gradient.

Runs natively on a CUDA box and under TRITON_INTERPRET=1 on CPU (conftest.py).
"""
from __future__ import annotations

import pytest
import torch

from kernels.group_norm_silu import GroupNormSiLUFunction, group_norm_silu, group_norm_silu_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# dtype -> (atol, rtol) of Triton against an fp32/fp64 gold. 16-bit: the kernel rounds once, the interpreter
# truncates fp32 -> bf16 where a GPU rounds to nearest: ~2 ulps.
TOL = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (3e-2, 2e-2), torch.float16: (4e-3, 4e-3)}
NAMES = ("x", "weight", "bias", "scale", "shift")


def _inputs(shape, groups, dtype, ss, layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, c = shape[:2]
    # a non-zero mean per channel: the two-pass statistics must not cancel
    x = torch.randn(*shape, generator=g) * 2.0 + torch.randn(1, c, *([1] * (len(shape) - 2)), generator=g) * 3.0
    t = dict(x=x, weight=1.0 + 0.3 * torch.randn(c, generator=g), bias=0.3 * torch.randn(c, generator=g))
    if ss:
        e = 0.5 * torch.randn(b, 2 * c, 1, 1, generator=g)  # the ResBlock's embedding, chunked: strided views
        t["emb"] = e
    leaves = {}
    for k, v in t.items():
        v = v.to(device=DEVICE, dtype=dtype)
        if k == "x" and layout == "channels_last":
            v = v.contiguous(memory_format=torch.channels_last)
        leaves[k] = v.detach().requires_grad_(True)
    if layout == "sliced":  # every other column of a tensor twice as wide: no single spatial stride
        wide = torch.stack([leaves["x"].detach(), torch.zeros_like(leaves["x"])], -1).flatten(-2)
        leaves["x"] = wide.requires_grad_(True)
    return leaves


def _call(fn, leaves, groups, layout):
    x = leaves["x"][..., ::2] if layout == "sliced" else leaves["x"]
    sc = sh = None
    if "emb" in leaves:
        sc, sh = leaves["emb"].chunk(2, dim=1)
    return fn(x, leaves["weight"], leaves["bias"], groups, 1e-5, sc, sh)


def _grads(leaves, out, gy, layout):
    ks = list(leaves)
    gs = torch.autograd.grad(out, [leaves[k] for k in ks], gy)
    d = dict(zip(ks, gs))
    if layout == "sliced":
        assert not d["x"][..., 1::2].any()
        d["x"] = d["x"][..., ::2]
    return d


def _triton(x, w, b, groups, eps, sc, sh):
    return group_norm_silu(x, w, b, groups, eps, sc, sh, impl="triton")


def _assert_close(actual, expected, atol, rtol, name):
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    bad = ~torch.isclose(a, e, atol=atol, rtol=rtol)
    assert not bad.any(), (f"{name}: {bad.sum().item()}/{bad.numel()} mismatches, max |err| "
                           f"{(a - e).abs().max().item():.3e} (atol={atol}, rtol={rtol})")


CASES = [  # (shape, groups): channels per group 2, 4, 3 (not a power of two: masked lanes), 1; 3-D input; H != W
    ((2, 64, 8, 8), 32),
    ((3, 128, 5, 7), 32),
    ((2, 96, 4, 4), 32),
    ((2, 32, 6, 6), 32),
    ((2, 64, 50), 16),
]


PARAMS = [(s, g, lay) for s, g in CASES for lay in ("contiguous", "channels_last", "sliced")
          if lay == "contiguous" or len(s) == 4]  # the layouts are 4-D


@pytest.mark.parametrize("ss", [True, False], ids=["scale_shift", "plain"])
@pytest.mark.parametrize("shape,groups,layout", PARAMS,
                         ids=[f"{'x'.join(map(str, s))}g{g}-{lay}" for s, g, lay in PARAMS])
def test_fp32_forward_and_every_gradient(shape, groups, layout, ss):
    leaves = _inputs(shape, groups, torch.float32, ss, layout)
    ref_leaves = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    y = _call(_triton, leaves, groups, layout)
    y_ref = _call(group_norm_silu_reference, ref_leaves, groups, layout)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)  # no copy: the output keeps the layout
    _assert_close(y, y_ref, *TOL[torch.float32], "y")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    g, g_ref = _grads(leaves, y, gy, layout), _grads(ref_leaves, y_ref, gy, layout)
    for k in g:
        scale = g_ref[k].abs().max().item()  # dw, db, d(scale) sum over many elements: compare on their scale
        _assert_close(g[k], g_ref[k], 2e-5 * max(1.0, scale), 1e-4, f"d{k}")


MULTI_TILE = [  # (shape, groups, tile elements, layout): 4, 5 (the last one partial) and 2 tiles of BLOCK_HW a group
    ((2, 8, 8, 8), 4, 32, "contiguous"),  # few groups: the interpreter's cost is per program and loop iteration
    ((3, 16, 5, 7), 4, 32, "channels_last"),
    ((2, 12, 4, 4), 4, 32, "contiguous"),
]


@pytest.mark.parametrize("shape,groups,tile,layout", MULTI_TILE,
                         ids=[f"{'x'.join(map(str, s))}-tile{t}-{lay}" for s, _, t, lay in MULTI_TILE])
def test_several_tiles_per_group(monkeypatch, shape, groups, tile, layout):
    """The loops over [BLOCK_HW, CPG] tiles that every GPU launch runs (the CPU default is one tile per group):
    a small tile forces several iterations of each pass, forward and backward."""
    import kernels.group_norm_silu as gns

    monkeypatch.setattr(gns, "_INTERPRET_TILE", tile)
    monkeypatch.setattr(gns, "_GPU_TILE", tile)
    hw = shape[2] * shape[3]
    _, block_hw, _ = gns._tiles(shape[1] // groups, hw, torch.device(DEVICE))
    assert -(-hw // block_hw) >= 2, (hw, block_hw)
    leaves = _inputs(shape, groups, torch.float32, True, layout)
    ref_leaves = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    y = _call(_triton, leaves, groups, layout)
    y_ref = _call(group_norm_silu_reference, ref_leaves, groups, layout)
    _assert_close(y, y_ref, *TOL[torch.float32], "y")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    g, g_ref = _grads(leaves, y, gy, layout), _grads(ref_leaves, y_ref, gy, layout)
    for k in g:
        scale = g_ref[k].abs().max().item()
        _assert_close(g[k], g_ref[k], 2e-5 * max(1.0, scale), 1e-4, f"d{k}")


def test_strided_weight_and_bias():
    """weight and bias views with a stride other than 1 (every other element of a wider tensor) give the same
    result and gradients as contiguous copies."""
    leaves = _inputs((2, 64, 4, 4), 32, torch.float32, True, "contiguous")
    wide = {k: torch.stack([leaves[k].detach(), torch.full_like(leaves[k], 7.0)], -1).flatten().requires_grad_(True)
            for k in ("weight", "bias")}
    strided = dict(leaves, weight=wide["weight"][::2], bias=wide["bias"][::2])
    assert strided["weight"].stride() == (2,)
    ref_leaves = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    y = _call(_triton, strided, 32, "contiguous")
    y_ref = _call(group_norm_silu_reference, ref_leaves, 32, "contiguous")
    _assert_close(y, y_ref, *TOL[torch.float32], "y")
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    gw, gb = torch.autograd.grad(y, [wide["weight"], wide["bias"]], gy)
    gw_ref, gb_ref = torch.autograd.grad(y_ref, [ref_leaves["weight"], ref_leaves["bias"]], gy)
    assert not gw[1::2].any() and not gb[1::2].any()
    _assert_close(gw[::2], gw_ref, 2e-5 * max(1.0, gw_ref.abs().max().item()), 1e-4, "dweight")
    _assert_close(gb[::2], gb_ref, 2e-5 * max(1.0, gb_ref.abs().max().item()), 1e-4, "dbias")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_16bit_against_fp64_gold(dtype):
    shape, groups = (2, 64, 8, 8), 32
    leaves = _inputs(shape, groups, dtype, True, "contiguous")
    gold = {k: v.detach().double().requires_grad_(True) for k, v in leaves.items()}
    y = _call(_triton, leaves, groups, "contiguous")
    y_gold = _call(group_norm_silu_reference, gold, groups, "contiguous")
    assert y.dtype == dtype
    atol, rtol = TOL[dtype]
    _assert_close(y, y_gold, atol, rtol, "y")
    gy = torch.randn(shape, generator=torch.Generator().manual_seed(3)).to(DEVICE, dtype)
    g, g_gold = _grads(leaves, y, gy, "contiguous"), _grads(gold, y_gold, gy.double(), "contiguous")
    for k in g:
        assert g[k].dtype == dtype
        scale = g_gold[k].abs().max().item()
        _assert_close(g[k], g_gold[k], atol * max(1.0, scale), rtol, f"d{k}")


def test_gradcheck_fp64():
    leaves = _inputs((2, 8, 3, 3), 4, torch.float64, True, "contiguous")
    x, w, b, e = leaves["x"], leaves["weight"], leaves["bias"], leaves["emb"]

    def f(x, w, b, e):
        sc, sh = e.chunk(2, dim=1)
        return GroupNormSiLUFunction.apply(x, w, b, sc, sh, 4, 1e-5)

    # fast mode: random projections of the Jacobian (a few kernel calls, not one per input element)
    assert torch.autograd.gradcheck(f, (x, w, b, e), eps=1e-6, atol=1e-5, fast_mode=True)


def test_cpu_dispatch_is_the_reference():
    if DEVICE == "cuda":
        pytest.skip("CPU dispatch")
    leaves = _inputs((2, 64, 4, 4), 32, torch.float32, True, "contiguous")
    y = _call(group_norm_silu, leaves, 32, "contiguous")
    assert torch.equal(y, _call(group_norm_silu_reference, leaves, 32, "contiguous"))


def test_bad_input_is_one_clear_error():
    x = torch.randn(2, 64, 4, 4)
    w, b = torch.ones(64), torch.zeros(64)
    with pytest.raises(ValueError, match="do not split into 32 groups"):
        group_norm_silu(torch.randn(2, 48, 4, 4), torch.ones(48), torch.zeros(48), 32)
    with pytest.raises(ValueError, match="scale and shift together"):
        group_norm_silu(x, w, b, 32, scale=torch.zeros(2, 64))
    with pytest.raises(ValueError, match=r"scale must hold \(B, C\)"):
        group_norm_silu(x, w, b, 32, scale=torch.zeros(2, 32), shift=torch.zeros(2, 32))
    with pytest.raises(ValueError, match="weight and bias"):
        group_norm_silu(x, None, b, 32)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        group_norm_silu(torch.randn(64, 4), w, b, 32)


def test_benchmark_writes_a_row_per_case(tmp_path, capsys):
    """`python -m launch.bench.kernels.group_norm_silu`: one CSV row per (dtype, mode, level, provider), positive times;
    on CPU only the eager providers (the interpreter is not a speed tool)."""
    import csv

    from launch.bench.kernels.group_norm_silu import LEVELS, main

    out = tmp_path / "g.csv"
    assert main(["--quick", "--batch", "1", "--dtypes", "fp32", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    providers = {"triton", "official", "native", "compile"} if DEVICE == "cuda" else {"official", "native"}
    assert {r["provider"] for r in rows} == providers
    assert len(rows) == 2 * len(LEVELS) * len(providers)
    assert all(float(r["ms_p50"]) > 0 and r["device"] and r["git_sha"] for r in rows)
    assert all(float(r["x_vs_official"]) == 1.0 for r in rows if r["provider"] == "official")
    with pytest.raises(SystemExit, match="unknown fp8"):
        main(["--dtypes", "fp8", "--csv", str(out)])
