"""Fused condition builder (kernels/conditions.py) and seeded noise MSE (kernels/noise_mse.py): Triton == reference.

The same file runs natively on a CUDA box and under TRITON_INTERPRET=1 on CPU (set by conftest.py).
"""
from __future__ import annotations

import pytest
import torch

from kernels.conditions import BuildConditionsFunction, build_conditions, build_conditions_reference
from kernels.noise_mse import noise_mse, noise_mse_reference, philox_randn_reference, regenerate_noise

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("y", "x_s", "x_r", "r_s", "r_r")
# dtype -> (atol, rtol). fp32: Triton vs reference directly. 16-bit: both vs an fp32 gold computed from the same
# (rounded) inputs; the interpreter truncates fp32->bf16 where a GPU rounds to nearest, so allow ~2 ulps.
TOL = {
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (3e-2, 2e-2),
    torch.float16: (4e-3, 4e-3),
}


@pytest.fixture
def device():
    return DEVICE


def assert_close(actual, expected, atol, rtol, name=""):
    """allclose with a report: mismatch count, first indices, max error, NaN/Inf mismatches."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    bad = ~torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
    if bad.any():
        idx = bad.nonzero()[:5].tolist()
        err = (a - e).abs().nan_to_num(posinf=float("inf"))
        nonfinite = (~torch.isfinite(a) != ~torch.isfinite(e)).sum().item()
        raise AssertionError(
            f"{name}: {bad.sum().item()}/{bad.numel()} mismatches (atol={atol}, rtol={rtol}), max |err| "
            f"{err.max().item():.3e}, first at {idx}: {a[tuple(idx[0])].item()} vs {e[tuple(idx[0])].item()}, "
            f"non-finite mismatches {nonfinite}"
        )


def make_inputs(shape, dtype=torch.float32, masks="mixed", neg=True, device=DEVICE, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = shape[0]

    def rnd(*s):
        return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

    data = dict(y=rnd(*shape), x_s=rnd(*shape), x_r=rnd(*shape), r=rnd(2 * b, *shape[1:]), noise=rnd(*shape))
    data["alpha_bar"] = torch.rand(b, generator=g).clamp(0.0066, 0.9999).to(device)
    pick = {"zeros": lambda: torch.zeros(b, dtype=torch.bool), "ones": lambda: torch.ones(b, dtype=torch.bool),
            "mixed": lambda: torch.arange(b) % 2 == 1}[masks]
    data["swap_pos"] = pick().to(device)
    data["swap_neg"] = (~pick() if masks == "mixed" else pick()).to(device) if neg else None
    return data


def _prep(t, req, layout):
    """(leaf, argument) for one input: the argument is the leaf itself or a non-contiguous view of it."""
    if layout == "channels_last":
        leaf = t.detach().to(memory_format=torch.channels_last).requires_grad_(req)
        return leaf, leaf
    if layout == "sliced":  # every other column of a tensor twice as wide
        leaf = torch.stack([t, torch.full_like(t, 7.0)], -1).flatten(-2).detach().requires_grad_(req)
        return leaf, leaf[..., ::2]
    leaf = t.detach().clone().requires_grad_(req)
    return leaf, leaf


def _grad(leaf, layout):
    if leaf.grad is None:
        return None
    if layout == "sliced":
        assert not leaf.grad[..., 1::2].any()
        return leaf.grad[..., ::2]
    return leaf.grad


def run(data, impl, layout="halves", grad_inputs=NAMES, upstream=None, use=("cond", "ys"), **kw):
    """Build leaves, run the op, backprop `upstream` grads; returns (cond, ys, {name: grad})."""
    b = data["y"].shape[0]
    ilay = "contiguous" if layout == "halves" else layout
    prepped = {k: _prep(data[k], k in grad_inputs, ilay) for k in ("y", "x_s", "x_r")}
    if layout == "halves":  # r_s, r_r are views of one restorer output, as the objective passes them
        r = data["r"].detach().clone().requires_grad_(True)
        r_s, r_r = r[:b], r[b:]
    else:
        prepped["r_s"] = _prep(data["r"][:b], "r_s" in grad_inputs, ilay)
        prepped["r_r"] = _prep(data["r"][b:], "r_r" in grad_inputs, ilay)
        r_s, r_r = prepped["r_s"][1], prepped["r_r"][1]
    args = (prepped["y"][1], prepped["x_s"][1], prepped["x_r"][1], r_s, r_r, data["alpha_bar"], data["swap_pos"],
            data["swap_neg"], data["noise"])
    if layout in ("channels_last", "sliced"):
        assert not args[0].is_contiguous() and not r_s.is_contiguous()
    cond, ys = build_conditions(*args, impl=impl, **kw)
    outs, grads_out = [], []
    if "cond" in use:
        outs.append(cond)
        grads_out.append(upstream[0] if upstream else torch.ones_like(cond))
    if "ys" in use:
        outs.append(ys)
        grads_out.append(upstream[1] if upstream else torch.ones_like(ys))
    torch.autograd.backward(outs, grads_out)
    grads = {k: _grad(prepped[k][0], ilay) for k in prepped}
    if layout == "halves":
        grads["r_s"], grads["r_r"] = (r.grad[:b], r.grad[b:]) if r.grad is not None else (None, None)
    return cond, ys, grads


def upstream_for(data, dtype, neg, seed=7):
    b, _, h, w = data["y"].shape
    g = torch.Generator().manual_seed(seed)
    gc = torch.randn((2 * b if neg else b), 9, h, w, generator=g).to(DEVICE, dtype)
    gy = torch.randn(b, 3, h, w, generator=g).to(DEVICE, dtype)
    return gc, gy


def compare(tri, ref, atol, rtol, what=""):
    assert_close(tri[0], ref[0], atol, rtol, f"{what} cond")
    assert_close(tri[1], ref[1], atol, rtol, f"{what} y_hat_s")
    for k in NAMES:
        if ref[2][k] is None:
            assert tri[2][k] is None, f"{what} grad {k}: expected None"
        else:
            assert tri[2][k] is not None, f"{what} grad {k} missing"
            assert_close(tri[2][k], ref[2][k], atol, rtol, f"{what} grad {k}")


SHAPES = [(1, 3, 17, 23), (3, 3, 64, 65), (4, 3, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("masks", ["zeros", "ones", "mixed"])
@pytest.mark.parametrize("neg", [True, False], ids=["neg", "pos_only"])
@pytest.mark.parametrize("layout", ["halves", "separate"])
def test_fp32_matches_reference(shape, masks, neg, layout):
    data = make_inputs(shape, masks=masks, neg=neg)
    up = upstream_for(data, torch.float32, neg)
    atol, rtol = TOL[torch.float32]
    compare(run(data, "triton", layout, upstream=up), run(data, "torch", layout, upstream=up), atol, rtol)


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "noncontig_grad"])
def test_non_contiguous(layout):
    data = make_inputs((2, 3, 16, 21))
    up = upstream_for(data, torch.float32, True)
    if layout == "noncontig_grad":
        up = tuple(t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in up)
        assert not up[0].is_contiguous()
    lay = "separate" if layout == "noncontig_grad" else layout
    compare(run(data, "triton", lay, upstream=up), run(data, "torch", lay, upstream=up), *TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("neg", [True, False], ids=["neg", "pos_only"])
def test_low_precision_against_fp32_gold(dtype, neg):
    data = make_inputs((3, 3, 64, 65), dtype=dtype, neg=neg)
    up = upstream_for(data, dtype, neg)
    gold_data = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                 for k, v in data.items()}
    gold = run(gold_data, "torch", upstream=tuple(t.float() for t in up))
    atol, rtol = TOL[dtype]
    for impl in ("triton", "torch"):
        out = run(data, impl, upstream=up)
        assert out[0].dtype == dtype and out[1].dtype == dtype and out[2]["r_s"].dtype == dtype
        compare(out, gold, atol, rtol, impl)


def test_mixed_dtypes_promote():
    """bf16 restorer output (autocast) with fp32 data: outputs in fp32, grads in each input's dtype."""
    data = make_inputs((2, 3, 9, 11))
    data["r"] = data["r"].bfloat16()
    up = upstream_for(data, torch.float32, True)
    tri, ref = run(data, "triton", upstream=up), run(data, "torch", upstream=up)
    assert tri[0].dtype == ref[0].dtype == torch.float32 and tri[2]["r_s"].dtype == torch.bfloat16
    compare(tri, ref, *TOL[torch.bfloat16])


@pytest.mark.parametrize("use", [("cond",), ("ys",)], ids=["cond_only", "ys_only"])
def test_training_case_and_partial_outputs(use):
    """Only r requires grad (data tensors do not); and only one of the two outputs used downstream."""
    data = make_inputs((2, 3, 10, 12))
    up = upstream_for(data, torch.float32, True)
    kw = dict(grad_inputs=("r_s", "r_r"), upstream=up, use=use)
    tri, ref = run(data, "triton", **kw), run(data, "torch", **kw)
    assert tri[2]["y"] is None and tri[2]["x_s"] is None
    compare(tri, ref, *TOL[torch.float32])


def test_env_forces_triton_and_function_apply_agrees(monkeypatch):
    data = make_inputs((2, 3, 8, 9))
    monkeypatch.setenv("DAA_KERNELS", "triton")
    b = 2
    args = (data["y"], data["x_s"], data["x_r"], data["r"][:b], data["r"][b:], data["alpha_bar"], data["swap_pos"],
            data["swap_neg"], data["noise"])
    r = data["r"].clone().requires_grad_(True)
    cond, ys = build_conditions(*args[:3], r[:b], r[b:], *args[5:])
    assert type(cond.grad_fn).__name__ == "BuildConditionsFunctionBackward"
    cond2, ys2 = BuildConditionsFunction.apply(*args[:5], None, *args[5:], None)
    ref = build_conditions_reference(*args)
    assert torch.equal(cond.detach(), cond2) and torch.equal(ys.detach(), ys2)
    assert_close(cond2, ref[0], *TOL[torch.float32], "apply vs reference")


def test_seeded_noise_is_deterministic_and_consistent():
    shape = (2, 3, 12, 13)
    data = make_inputs(shape)
    data["noise"] = None
    c1 = run(data, "triton", seed=1234)[0]
    c2 = run(data, "triton", seed=1234)[0]
    c3 = run(data, "triton", seed=1235)[0]
    assert torch.equal(c1, c2)
    assert not torch.allclose(c1[:, :3], c3[:, :3])
    assert torch.equal(c1[:, 3:], c3[:, 3:])  # only the noisy block depends on ε
    # the same ε comes back from regenerate_noise (Triton: bit-exact; torch Philox copy: to a few ulps)
    eps = regenerate_noise(1234, shape, DEVICE, impl="triton")
    data["noise"] = eps
    assert torch.equal(run(data, "triton")[0], c1)
    eps_ref = regenerate_noise(1234, shape, DEVICE, impl="torch")
    assert_close(eps_ref, eps, 1e-4, 1e-5, "philox reference")
    data["noise"] = None
    assert_close(run(data, "torch", seed=1234)[0], c1, 1e-4, 1e-5, "seeded reference path")
    assert abs(eps.mean().item()) < 0.2 and abs(eps.std().item() - 1.0) < 0.1


def test_philox_reference_matches_triton_randn():
    for seed in (0, 1, 2**31 + 5, 2**40 + 7):
        a = regenerate_noise(seed, (3, 5, 7, 11), DEVICE, impl="triton")
        b = philox_randn_reference(seed, a.numel(), DEVICE).reshape(a.shape)
        assert_close(b, a, 1e-4, 1e-5, f"seed {seed}")


@pytest.mark.parametrize("seeded", [False, True], ids=["noise", "seeded"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_noise_mse(seeded, groups, dtype):
    b, shape = 3, (3, 3, 17, 19)
    g = torch.Generator().manual_seed(3)
    eh = torch.randn(groups * b, *shape[1:], generator=g).to(DEVICE, dtype)
    noise = regenerate_noise(99, shape, DEVICE, impl="triton").to(dtype)
    kw = dict(seed=99, groups=groups) if seeded else dict(noise=noise)
    w = torch.tensor([1.0, -0.5][:groups], device=DEVICE)
    res = {}
    for impl in ("triton", "torch"):
        x = eh.clone().requires_grad_(True)
        d = noise_mse(x, impl=impl, **kw)
        (d * w).sum().backward()
        res[impl] = (d, x.grad)
    gold = noise_mse_reference(eh.float(), noise.float(), groups)
    atol, rtol = (1e-5, 1e-5) if dtype == torch.float32 else TOL[dtype]
    assert_close(res["triton"][0], gold, 1e-4, 1e-5, "d")
    assert_close(res["triton"][1], res["torch"][1], atol, rtol, "grad eps_hat")


def test_gradcheck_fp64():
    """float64 gradcheck of the Triton Function (fp64 math in-kernel when inputs are fp64)."""
    data = make_inputs((2, 3, 3, 4), dtype=torch.float64)
    ts = [data[k].clone().requires_grad_(True) for k in ("y", "x_s", "x_r")]
    ts += [data["r"][:2].clone().requires_grad_(True), data["r"][2:].clone().requires_grad_(True)]

    def f(y, xs, xr, rs, rr):
        return BuildConditionsFunction.apply(y, xs, xr, rs, rr, None, data["alpha_bar"].double(), data["swap_pos"],
                                             data["swap_neg"], data["noise"], None)

    assert torch.autograd.gradcheck(f, tuple(ts), eps=1e-6, atol=1e-7, fast_mode=True)
    # full (slow-mode) Jacobian through the whole-r path on a smaller problem, positives only
    small = make_inputs((2, 3, 2, 3), dtype=torch.float64, neg=False)
    r = small["r"].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda r: BuildConditionsFunction.apply(*[small[k] for k in ("y", "x_s", "x_r")], None, None, r,
                                                small["alpha_bar"], small["swap_pos"], None, small["noise"], None),
        (r,), eps=1e-6, atol=1e-7)


def test_multi_block_tails(monkeypatch):
    """Several programs per sample with a ragged last block (the CPU default is one block per sample)."""
    import kernels.conditions as kc

    monkeypatch.setattr(kc, "elementwise_settings", lambda n, device: (256, 4))
    data = make_inputs((2, 3, 17, 23))
    up = upstream_for(data, torch.float32, True)
    compare(run(data, "triton", upstream=up), run(data, "torch", upstream=up), *TOL[torch.float32])


def _raises_one_line(match, fn, *args, **kw):
    with pytest.raises(ValueError, match=match) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_input_validation(impl):
    data = make_inputs((2, 3, 8, 8))
    y, xs, xr, r, a, mp, mn, nz = (data[k] for k in ("y", "x_s", "x_r", "r", "alpha_bar", "swap_pos", "swap_neg",
                                                       "noise"))
    rs, rr = r[:2], r[2:]
    bc = build_conditions
    _raises_one_line("shape", bc, y[:, :2], xs, xr, rs, rr, a, mp, mn, nz, impl=impl)
    _raises_one_line("x_s has shape", bc, y, xs[:1], xr, rs, rr, a, mp, mn, nz, impl=impl)
    _raises_one_line("alpha_bar must have one value", bc, y, xs, xr, rs, rr, a[:1], mp, mn, nz, impl=impl)
    _raises_one_line("swap_neg must have one value", bc, y, xs, xr, rs, rr, a, mp, mn[:1], nz, impl=impl)
    _raises_one_line("exactly one of", bc, y, xs, xr, rs, rr, a, mp, mn, nz, impl=impl, seed=3)
    _raises_one_line("exactly one of", bc, y, xs, xr, rs, rr, a, mp, mn, None, impl=impl)
    _raises_one_line("seed must be", bc, y, xs, xr, rs, rr, a, mp, mn, None, impl=impl, seed=1.5)
    _raises_one_line("float16/bfloat16", bc, y.long(), xs, xr, rs, rr, a, mp, mn, nz, impl=impl)
    _raises_one_line("takes no gradient", bc, y, xs, xr, rs, rr, a, mp, mn, nz.clone().requires_grad_(), impl=impl)
    _raises_one_line("takes no gradient", bc, y, xs, xr, rs, rr, a.clone().requires_grad_(), mp, mn, nz, impl=impl)
    _raises_one_line("not G copies", noise_mse, torch.zeros(4, 3, 2, 2), torch.zeros(3, 3, 2, 2), impl=impl)
    _raises_one_line("exactly one of", noise_mse, torch.zeros(4, 3, 2, 2), impl=impl)
    _raises_one_line("groups must divide", noise_mse, torch.zeros(4, 3, 2, 2), seed=1, groups=3, impl=impl)


def test_forward_passes_contiguous_inputs_through(monkeypatch):
    """Host overhead: already-contiguous inputs (and the (B,) vectors) reach the kernel as they are, no copies."""
    import kernels.conditions as kc

    seen = {}
    real = kc._build_conditions_fwd_kernel

    class Spy:
        def __getitem__(self, grid):
            def launch(*args, **kw):
                seen["args"] = args
                return real[grid](*args, **kw)
            return launch

    monkeypatch.setattr(kc, "_build_conditions_fwd_kernel", Spy())
    data = make_inputs((2, 3, 8, 9))
    r = data["r"].clone().requires_grad_(True)
    build_conditions(data["y"], data["x_s"], data["x_r"], r[:2], r[2:], data["alpha_bar"], data["swap_pos"],
                     data["swap_neg"], data["noise"], impl="triton")
    args = seen["args"]
    assert args[0] is data["y"] and args[1] is data["x_s"] and args[5] is data["noise"]
    assert args[3].data_ptr() == r.data_ptr() and args[4].data_ptr() == r[2:].data_ptr()
    assert args[7] is data["alpha_bar"] and args[8] is data["swap_pos"] and args[9] is data["swap_neg"]


def test_bench_splits_device_timeline_into_calls():
    """launch.bench.kernels device time: the L2-flush markers cut the profiler's device timeline into calls."""
    from launch.bench.kernels import _MARKER, per_call_ms

    m = f"_{_MARKER}_kernel"
    evs = [(0, 50, m), (60, 1000, "k1"), (1100, 500, "k2"), (1700, 50, m), (1800, 3000, "k1"),  # fn0: 1.5, 3 us
           (4900, 50, m), (5000, 2000, "Memcpy HtoD"), (7100, 50, m), (7200, 4000, "k3"), (11300, 50, m)]
    assert per_call_ms(evs, 2, 2) == pytest.approx([2.25e-3, 3e-3])
    assert isinstance(per_call_ms(evs, 3, 2), str)  # wrong marker count -> a reason, never a number
    assert per_call_ms([(0, 5, m), (10, 5, m)], 1, 1) == [None]  # a call with no device work


def test_bench_keeps_only_device_work():
    """Kernels, memcpys and memsets count; CPU ops, annotation spans and sync spans on the device rows do not."""
    from types import SimpleNamespace

    from launch.bench.kernels import _device_events

    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA

    def ev(start, dur, name, dev, act):
        return SimpleNamespace(start_ns=lambda: start, duration_ns=lambda: dur, name=lambda: name,
                               device_type=lambda: dev, activity_type=lambda: act)

    raw = [ev(5, 100, "## Call CompiledFxGraph ##", cuda, "gpu_user_annotation"), ev(10, 20, "k2", cuda, "kernel"),
           ev(0, 3, "k1", cuda, "kernel"), ev(40, 4, "Memset (Device)", cuda, "gpu_memset"),
           ev(50, 6, "Memcpy HtoD", cuda, "gpu_memcpy"), ev(60, 90, "cudaStreamSynchronize", cuda, "cuda_sync"),
           ev(1, 50, "aten::add", cpu, "cpu_op")]
    prof = SimpleNamespace(profiler=SimpleNamespace(kineto_results=SimpleNamespace(events=lambda: raw)))
    assert [e[2] for e in _device_events(prof)] == ["k1", "k2", "Memset (Device)", "Memcpy HtoD"]


def test_bench_csv_with_old_header_diverts(tmp_path):
    from launch.bench.kernels import CSV_FIELDS
    from launch.harness import CsvLog

    new = tmp_path / "a.csv"
    assert CsvLog(new, CSV_FIELDS, allow_alt=True).path == new
    old = tmp_path / "k.csv"
    old.write_text(",".join(CSV_FIELDS[:21]) + "\n1,2\n")
    log = CsvLog(old, CSV_FIELDS, allow_alt=True)
    assert log.path == tmp_path / "k_v2.csv" and "k_v2.csv" in log.note
    assert log.append([{"op": "x", "B": 1}]) == 1 and old.read_text().endswith("1,2\n")  # the old file untouched
    assert (tmp_path / "k_v2.csv").read_text().splitlines()[0] == ",".join(CSV_FIELDS)
    with pytest.raises(SystemExit, match="another column set"):
        CsvLog(old, CSV_FIELDS)  # without allow_alt: refused, one line


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_in_forward_and_backward():
    data = make_inputs((4, 3, 32, 32))
    up = upstream_for(data, torch.float32, True)
    run(data, "triton", grad_inputs=("r_s", "r_r"), upstream=up)  # JIT / allocator warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run(data, "triton", grad_inputs=("r_s", "r_r"), upstream=up)
        r = data["r"].clone().requires_grad_(True)
        d = noise_mse(r, data["noise"], impl="triton")
        d.backward(torch.ones_like(d))
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_device_time_on_gpu():
    """The profiler path of launch.bench.kernels finds its markers and gives a positive per-call time (else n/a +
    reason)."""
    import launch.bench.kernels as kb

    src = torch.randn(1 << 24, device="cuda")
    dst = torch.empty_like(src)
    ms = kb.device_times([lambda: dst.copy_(src), lambda: (dst.copy_(src), dst.copy_(src))], torch.device("cuda"),
                         n=3)
    assert ms[0] is not None and ms[1] is not None, kb._DEV_NOTES
    assert 0 < ms[0] < 10 and 1.2 < ms[1] / ms[0] < 3, ms


def test_bench_gpu_report_with_fake_timings(monkeypatch, tmp_path, capsys):
    """The GPU-only report paths of launch.bench.kernels --target (device columns, verdict, launch-config sweep), with
    timings faked so that they run on any box: the one real GPU run must not die on a formatting slip."""
    import launch.bench.kernels.run as kb  # the driver's namespace: what main() looks its helpers up in

    walls = {"triton": 0.5, "triton-seeded": 0.45, "reference": 0.9, "compile": 0.6, "official": 1.8}
    devs = {"triton": 0.07, "triton-seeded": 0.065, "reference": 0.4, "compile": 0.2, "official": 0.9}

    def fake_case(op, mode, prov, d):
        return lambda: prov

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "FakeGPU")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(kb, "_inputs", lambda b, h, w, dtype, device: {"y": torch.zeros(b, 3, 1, 1)})
    monkeypatch.setattr(kb, "make_case", fake_case)
    monkeypatch.setattr(kb, "copy_bandwidth", lambda device: (4000.0, 4200.0))
    monkeypatch.setattr(kb, "time_fn", lambda fn, device, quick, min_samples=10: (walls[fn()], walls[fn()] * 0.9,
                                                                                    walls[fn()] * 1.2))
    monkeypatch.setattr(kb, "device_times", lambda fns, device, n=10: [devs[f()] if f() != "official" else None
                                                                       for f in fns])
    out, csv = tmp_path / "k.md", tmp_path / "k.csv"
    assert kb.main(["--target", "--csv", str(csv), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    md = out.read_text()
    assert "| fused fwd+bwd, % of copy bandwidth | bf16 (decides) |" in md and "launch-config sweep" in md
    assert "verdict bf16: device time 2/3 targets met (1 n/a), wall 1/3 targets met" in text  # official dev n/a
    assert "|  | n/a |" not in md and "| 0.0700 | 3595.1 | 85.6 |" in md
    rows = csv.read_text().splitlines()
    assert rows[0] == ",".join(kb.CSV_FIELDS) and len(rows) == 1 + 2 * 3 * 5
    assert all(len(r.split(",")) == len(kb.CSV_FIELDS) for r in rows)
