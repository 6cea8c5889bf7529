"""The benchmarked cases: the official eager op sequence, the providers of each op and their byte models
(see launch/bench/kernels/run.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.conditions import build_conditions, build_conditions_reference
from kernels.noise_mse import noise_mse

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def official_conditions(y, x_s, x_r, r_s, r_r, alpha_bar, mask_cpu, mask_neg_cpu, noise):
    """What a straightforward port does: separate q_sample, ŷ_s/ŷ_r, clone + boolean-mask in-place swaps (masks are
    CPU tensors, `torch.rand(b) > 0.5`, as in the official code), two channel cats, one batch cat."""
    g = alpha_bar.view(-1, 1, 1, 1).to(y.dtype)
    y_noisy = g.sqrt() * y + (1 - g).sqrt() * noise
    y_syn_correct = x_s + r_s
    y_real_correct = x_r + r_r
    y_syn_correct_swap = y_syn_correct.clone()
    y_real_correct_swap = y_real_correct.clone()
    y_syn_correct_swap[mask_cpu] = y_real_correct[mask_cpu]
    y_real_correct_swap[mask_cpu] = y_syn_correct[mask_cpu]
    y_syn_correct_neg = x_s + r_r
    y_real_correct_neg = x_r + r_s
    y_syn_correct_neg_swap = y_syn_correct_neg.clone()
    y_real_correct_neg_swap = y_real_correct_neg.clone()
    y_syn_correct_neg_swap[mask_neg_cpu] = y_real_correct_neg[mask_neg_cpu]
    y_real_correct_neg_swap[mask_neg_cpu] = y_syn_correct_neg[mask_neg_cpu]
    pos = torch.cat([y_noisy, y_syn_correct_swap, y_real_correct_swap], dim=1)
    neg = torch.cat([y_noisy, y_syn_correct_neg_swap, y_real_correct_neg_swap], dim=1)
    return torch.cat([pos, neg], 0), y_syn_correct


def reference_noise_mse(eps_hat, noise):
    b = noise.shape[0]
    return torch.stack([F.mse_loss(eps_hat[:b], noise), F.mse_loss(eps_hat[b:], noise)])


# ---------------------------------------------------------------------------------------------------------------
# byte models (minimal traffic; planes of B·H·W elements, see kernels/conditions.py)
# ---------------------------------------------------------------------------------------------------------------


def bytes_moved(op: str, mode: str, provider: str, b: int, h: int, w: int, elsize: int) -> int:
    plane = b * h * w * elsize
    seeded = provider == "triton-seeded"
    if op == "conditions":
        fwd = 36 if seeded else 39
        bwd = 21
    elif op == "noise_mse":  # ε̂ is 6 planes, ε 3 planes
        fwd = 6 if seeded else 9
        bwd = 12 if seeded else 15
    else:  # pipeline fwd+bwd: randn write 3 + conditions 60 + noise_mse 24, seeded: 57 + 18
        return plane * (75 if seeded else 87)
    return plane * {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]


# ---------------------------------------------------------------------------------------------------------------
# timing: wall (do_bench / a timer loop on CPU) and device (torch.profiler)
# ---------------------------------------------------------------------------------------------------------------


def _inputs(b, h, w, dtype, device):
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, generator=g, device=device, dtype=dtype)

    d = dict(y=rnd(b, 3, h, w), x_s=rnd(b, 3, h, w), x_r=rnd(b, 3, h, w), noise=rnd(b, 3, h, w),
             r=rnd(2 * b, 3, h, w).requires_grad_(True))
    d["alpha_bar"] = torch.rand(b, generator=g, device=device)
    d["swap_pos"] = torch.arange(b, device=device) % 2 == 0  # half the samples swapped, like Bernoulli(0.5)
    d["swap_neg"] = torch.arange(b, device=device) % 4 < 2
    d["mask_cpu"], d["mask_neg_cpu"] = d["swap_pos"].cpu(), d["swap_neg"].cpu()
    d["eps_hat"] = rnd(2 * b, 3, h, w).requires_grad_(True)
    d["g_cond"] = rnd(2 * b, 9, h, w)
    d["g_ys"] = rnd(b, 3, h, w)
    d["g_d"] = torch.tensor([1.0, -0.5], device=device)
    return d


_COMPILED = {}


def _compiled(fn):
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def conditions_forward(provider: str, d):
    b = d["y"].shape[0]
    r_s, r_r = d["r"][:b], d["r"][b:]
    common = (d["y"], d["x_s"], d["x_r"], r_s, r_r, d["alpha_bar"])
    if provider == "triton":
        return build_conditions(*common, d["swap_pos"], d["swap_neg"], d["noise"], impl="triton")
    if provider == "triton-seeded":
        return build_conditions(*common, d["swap_pos"], d["swap_neg"], None, impl="triton", seed=1234)
    if provider == "reference":
        return build_conditions_reference(*common, d["swap_pos"], d["swap_neg"], d["noise"])
    if provider == "compile":
        return _compiled(build_conditions_reference)(*common, d["swap_pos"], d["swap_neg"], d["noise"])
    if provider == "official":
        return official_conditions(*common, d["mask_cpu"], d["mask_neg_cpu"], d["noise"])
    raise ValueError(provider)


def noise_mse_forward(provider: str, d):
    if provider == "triton":
        return noise_mse(d["eps_hat"], d["noise"], impl="triton")
    if provider == "triton-seeded":
        return noise_mse(d["eps_hat"], seed=1234, groups=2, impl="triton")
    if provider == "reference":
        return reference_noise_mse(d["eps_hat"], d["noise"])
    if provider == "compile":
        return _compiled(reference_noise_mse)(d["eps_hat"], d["noise"])
    raise ValueError(provider)


def pipeline_step(provider: str, d):
    """Everything ε touches in one step, fwd+bwd (the U-Net in between replaced by the identity on cond[:, :3])."""
    b = d["y"].shape[0]
    r_s, r_r = d["r"][:b], d["r"][b:]
    common = (d["y"], d["x_s"], d["x_r"], r_s, r_r, d["alpha_bar"], d["swap_pos"], d["swap_neg"])
    if provider == "triton":
        noise = torch.randn_like(d["y"])
        cond, ys = build_conditions(*common, noise, impl="triton")
        dd = noise_mse(d["eps_hat"], noise, impl="triton")
    else:
        cond, ys = build_conditions(*common, None, impl="triton", seed=1234)
        dd = noise_mse(d["eps_hat"], seed=1234, groups=2, impl="triton")
    torch.autograd.grad([cond, ys, dd], [d["r"], d["eps_hat"]], [d["g_cond"], d["g_ys"], d["g_d"]])


def make_case(op, mode, provider, d):
    """A zero-argument callable timing `mode` of `provider`."""
    if op == "pipeline":
        return lambda: pipeline_step(provider, d)
    fwd = (lambda: conditions_forward(provider, d)) if op == "conditions" else (lambda: noise_mse_forward(provider, d))
    if op == "conditions":
        inputs, grads = [d["r"]], lambda outs: [d["g_cond"], d["g_ys"]]
    else:
        inputs, grads = [d["eps_hat"]], lambda outs: [d["g_d"]]
    if mode == "fwd":
        return fwd
    if mode == "fwd+bwd":
        def full():
            outs = fwd()
            outs = outs if isinstance(outs, tuple) else (outs,)
            torch.autograd.grad(outs, inputs, grads(outs))
        return full
    outs = fwd()
    outs = outs if isinstance(outs, tuple) else (outs,)
    return lambda: torch.autograd.grad(outs, inputs, grads(outs), retain_graph=True)


# ---------------------------------------------------------------------------------------------------------------
# report: fixed-width text on stdout, the same tables as markdown in --out
# ---------------------------------------------------------------------------------------------------------------
