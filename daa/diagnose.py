"""Is the diffusion loss pulling the restorer the right way? (`python -m daa.diagnose RUN_DIR --pairs SPLIT`)

Given a trained run (its checkpoint holds R and ε_θ) and target-domain pairs (x_r, y_r) that training never saw paired,
this reads the gradient of α·L_noise — the only thing DAA adds to synthetic-only training — and compares it with
what would help, per quartile of the diffusion step t:

- **cos(−∇, y_r − ŷ_r)**: the cosine, per sample, between the descent direction of α·L_noise on R's real-domain output
  and the step that would make that output its clean image. > 0: the noise loss pulls R(x_r) toward the truth.
  The same cosine on the synthetic output ŷ_s is shown beside it.
- **RMS ratio**: RMS of ∂(α·L_noise)/∂ŷ_r over RMS of the Charbonnier gradient ∂L_pix/∂ŷ_s — how loud the adaptation
  signal is next to the supervised one (both losses are means over the same batch, so the ratio is scale-free).
- **parameter-space cosines** of ∇_θ(α·L_noise) with the oracle's gradient (Charbonnier on the target pairs: what
  training on real pairs would do) and with the source gradient (Charbonnier on the synthetic pairs), the source
  gradient's own cosine with the oracle, and how much adding the noise term moves the total update toward the
  oracle's (Δcos = cos(g_src + g_noise, g_oracle) − cos(g_src, g_oracle)). These use the gradients summed over the
  quartile's batches (one batch's gradient is mostly sampling noise), and ‖∇θ noise‖/‖∇θ pix‖ compares their norms.

A per-pixel cosine between two unrelated directions in D dimensions is of the order 1/√D (64² RGB crops: ±0.01), so
read cos(−∇, y_r−ŷ_r) against that scale.

- **smoothing**: cos(−∇, blur(ŷ_r) − ŷ_r) — does the noise loss pull R's real output toward a smoother image (Gaussian
  σ 1.5 px)? — next to cos(y_r − ŷ_r, blur(ŷ_r) − ŷ_r), how much smoothing the clean image itself asks for. A first
  far above the second: the adaptation signal smooths more than the truth wants, and R loses detail.

A second table (daa/condition_preference.py, same crops and draws) reads the loss itself with R's real output
replaced by the clean image, a smoothed copy, or the unrestored input: which real-slot image ε_θ rewards.

Source pairs: the split's own source-degraded copies (corpus splits written by data_shards.valset), else `--source
SPLIT`, else — for denoising — the run's on-the-fly AWGN (σ ~ U[data.awgn_sigma]) on other clean crops of the split.
The real and the synthetic crop of a batch row come from different images, as in training. Nothing is trained and
nothing is written except `--json`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .condition_preference import run_preferences
from .condition_preference import table_md as pref_table_md
from .objective import DAAObjective, StepDraws, alpha_at, charbonnier
from .probe_batches import quartile_batches, smoothing_direction


@dataclass
class Probe:
    """Gradient statistics of one batch (or the mean over batches)."""

    cos_real: float
    """mean over samples of cos(−∂(αL_noise)/∂ŷ_r, y_r − ŷ_r)"""
    cos_syn: float
    """the same on the synthetic output: cos(−∂(αL_noise)/∂ŷ_s, y_s − ŷ_s)"""
    rms_ratio: float
    """RMS ∂(αL_noise)/∂ŷ_r / RMS ∂L_pix/∂ŷ_s"""
    cos_oracle: float
    """parameter space: cos(∇θ αL_noise, ∇θ L_oracle)"""
    cos_source: float
    """parameter space: cos(∇θ αL_noise, ∇θ L_pix)"""
    cos_source_oracle: float
    """parameter space: cos(∇θ L_pix, ∇θ L_oracle), the reference"""
    delta_cos_total: float
    """cos(∇θ(L_pix + αL_noise), ∇θ L_oracle) − cos(∇θ L_pix, ∇θ L_oracle)"""
    norm_ratio: float
    """‖∇θ αL_noise‖ / ‖∇θ L_pix‖"""
    cos_smooth: float = math.nan
    """cos(−∂(αL_noise)/∂ŷ_r, blur(ŷ_r) − ŷ_r): > 0, the noise loss pulls R's real output toward a smoother image"""
    cos_truth_smooth: float = math.nan
    """cos(y_r − ŷ_r, blur(ŷ_r) − ŷ_r), the reference: how far the way to the clean image is itself smoothing"""


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = a.norm(), b.norm()
    return float((a @ b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _per_sample_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten(1), b.flatten(1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    ok = (na > 0) & (nb > 0)
    if not bool(ok.any()):
        return float("nan")
    return float(((a * b).sum(1)[ok] / (na[ok] * nb[ok])).mean())


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def probe_batch(obj: DAAObjective, x_s: torch.Tensor, y_s: torch.Tensor, x_r: torch.Tensor, y_r: torch.Tensor,
                alpha: float, draws: StepDraws, y_ref: torch.Tensor | None = None, grads: dict | None = None) -> Probe:
    """Gradient statistics of one batch under fixed draws (tensors in the networks' value range). If `grads` is a
    dict, the three parameter-space gradients are added into it (keys noise, src, oracle) for pooled cosines."""
    if obj.cfg.mode == "baseline":
        raise ValueError("the diagnostic needs a run trained with a diffusion model (objective mode daa or daa_ref)")
    params = [p for p in obj.restorer.parameters() if p.requires_grad]
    r_s, r_r = obj.restore_pair(x_s, x_r)
    rs, rr = r_s.detach().requires_grad_(True), r_r.detach().requires_grad_(True)
    batch = {"x_s": x_s, "y_s": y_s, "x_r": x_r, **({"y_ref": y_ref} if y_ref is not None else {})}
    out = obj.loss_from_residuals(batch, rs, rr, alpha, draws)
    eps = obj.cfg.charbonnier_eps
    pix = charbonnier(x_s + rs, y_s, eps)
    noise = out["loss"] - pix  # α·L_noise, with its graph (the objective's total is L_pix + α·L_noise)
    g_rs, g_rr = torch.autograd.grad(noise, [rs, rr], allow_unused=True, retain_graph=True)
    g_rs = torch.zeros_like(rs) if g_rs is None else g_rs
    g_rr = torch.zeros_like(rr) if g_rr is None else g_rr
    g_pix = torch.autograd.grad(pix, rs)[0]
    y_hat_s, y_hat_r = (x_s + rs).detach(), (x_r + rr).detach()
    rms = lambda t: float(t.pow(2).mean().sqrt())  # noqa: E731

    # parameter space: push the residual gradients through R (one restorer graph, reused)
    def through_r(gs: torch.Tensor, gr: torch.Tensor) -> torch.Tensor:
        return _flat(torch.autograd.grad([r_s, r_r], params, grad_outputs=[gs, gr], retain_graph=True,
                                         allow_unused=True) if params else [])

    g_noise = through_r(g_rs, g_rr)
    g_src = through_r(g_pix, torch.zeros_like(rr))
    g_or_r = torch.autograd.grad(charbonnier(x_r + rr, y_r, eps), rr)[0]
    g_or = through_r(torch.zeros_like(rs), g_or_r)
    if grads is not None:
        for k, g in (("noise", g_noise), ("src", g_src), ("oracle", g_or)):
            grads[k] = grads[k] + g if k in grads else g.clone()
    smooth = smoothing_direction(y_hat_r)
    return Probe(
        cos_real=_per_sample_cos(-g_rr, y_r - y_hat_r), cos_syn=_per_sample_cos(-g_rs, y_s - y_hat_s),
        cos_smooth=_per_sample_cos(-g_rr, smooth), cos_truth_smooth=_per_sample_cos(y_r - y_hat_r, smooth),
        rms_ratio=rms(g_rr) / max(rms(g_pix), 1e-30),
        cos_oracle=_cos(g_noise, g_or), cos_source=_cos(g_noise, g_src), cos_source_oracle=_cos(g_src, g_or),
        delta_cos_total=_cos(g_src + g_noise, g_or) - _cos(g_src, g_or),
        norm_ratio=float(g_noise.norm() / max(float(g_src.norm()), 1e-30)))


def mean_probe(ps: list[Probe], grads: dict | None = None) -> Probe:
    """Mean of the per-batch statistics; with `grads` (summed over the batches), the parameter-space cosines and the
    norm ratio are those of the summed gradients: one batch's gradient is too noisy to say where training goes."""
    def m(name):
        v = [getattr(p, name) for p in ps if not math.isnan(getattr(p, name))]
        return sum(v) / len(v) if v else float("nan")
    out = Probe(**{k: m(k) for k in Probe.__dataclass_fields__})
    if grads:
        gn, gs, go = grads["noise"], grads["src"], grads["oracle"]
        out.cos_oracle, out.cos_source, out.cos_source_oracle = _cos(gn, go), _cos(gn, gs), _cos(gs, go)
        out.delta_cos_total = _cos(gs + gn, go) - _cos(gs, go)
        out.norm_ratio = float(gn.norm() / max(float(gs.norm()), 1e-30))
    return out


def run_probes(obj: DAAObjective, pairs: dict[str, torch.Tensor], alpha: float, batches: int, batch: int,
               seed: int = 0) -> dict[str, Probe]:
    """Per t-quartile (and 'all') mean Probe over `batches` batches drawn from `pairs` (quartile_batches)."""
    out: dict[str, Probe] = {}
    total: dict = {}
    for label, group in quartile_batches(obj, pairs, batches, batch, seed):
        grads: dict = {}
        ps = [probe_batch(obj, x_s, y_s, x_r, y_r, alpha, d, y_ref=y_ref, grads=grads)
              for x_s, y_s, x_r, y_r, d, y_ref in group]
        out[label] = mean_probe(ps, grads)
        for k, g in grads.items():
            total[k] = total[k] + g if k in total else g.clone()
    out["all"] = mean_probe(list(out.values()), total)
    return out


def fmt(v: float, spec: str = "+.3f") -> str:
    """A table cell; '–' for a statistic a cached result predates (nan)."""
    return "–" if v is None or math.isnan(v) else format(v, spec)


def table_md(res: dict[str, Probe]) -> str:
    lines = ["| t | cos(−∇, y_r−ŷ_r) | cos syn | RMS ratio | cos θ: oracle | cos θ: source | cos θ: source·oracle | "
             "Δcos total→oracle | ‖∇θ noise‖/‖∇θ pix‖ | cos(−∇, blur−ŷ_r) | cos(y_r−ŷ_r, blur−ŷ_r) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, p in res.items():
        lines.append(f"| {k} | {p.cos_real:+.3f} | {p.cos_syn:+.3f} | {p.rms_ratio:.3f} | {p.cos_oracle:+.3f} | "
                     f"{p.cos_source:+.3f} | {p.cos_source_oracle:+.3f} | {p.delta_cos_total:+.4f} | "
                     f"{p.norm_ratio:.3f} | {fmt(p.cos_smooth)} | {fmt(p.cos_truth_smooth)} |")
    return "\n".join(lines)


# ---- loading a run --------------------------------------------------------------------------------------------------
def load_run(run_dir: str | Path, tag: str | None = None):
    """(config, objective with R and ε_θ loaded from the checkpoint, images seen)."""
    from .config import load_config
    from .training.checkpoint import CheckpointDir
    from .training.trainer import build_objective

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = load_config(str(run_dir / "config.yaml"))
    if cfg.objective.mode == "baseline":
        raise ValueError(f"{run_dir} was trained in baseline mode: it has no diffusion model to diagnose")
    if cfg.run.zero_stage == 3:
        raise ValueError(f"{run_dir}: ZeRO-3 checkpoints are partitioned; the diagnostic reads ZeRO 0-2 runs")
    ckpt = CheckpointDir(run_dir)
    tag = tag or ckpt.latest(warn=False)
    if tag is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint")
    path = ckpt.root / tag / "mp_rank_00_model_states.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    state = torch.load(path, map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    obj = build_objective(cfg)
    obj.load_state_dict({k: v.float() for k, v in state["module"].items()})
    seen = int(state.get("images_seen", cfg.run.total_images))  # the trainer's client state, saved by DeepSpeed
    return cfg, obj.eval(), seen


def crops_from_split(split: str, patch: int, n: int, gen: torch.Generator, domain: str = "target"):
    """n random patch×patch crops of a data_shards.valset split: (degraded, clean) in [0,1]."""
    from data_shards.valset import load_valset

    deg, clean = load_valset(split, domain=domain, as_list=True)
    xs, ys = [], []
    for _ in range(n):
        k = int(torch.randint(0, len(deg), (1,), generator=gen))
        h, w = deg[k].shape[-2:]
        if h < patch or w < patch:
            raise ValueError(f"{split}: image {k} ({h}x{w}) is smaller than the patch {patch}")
        y, x = int(torch.randint(0, h - patch + 1, (1,), generator=gen)), int(torch.randint(0, w - patch + 1, (1,),
                                                                                              generator=gen))
        xs.append(deg[k][:, y:y + patch, x:x + patch])
        ys.append(clean[k][:, y:y + patch, x:x + patch])
    return torch.stack(xs), torch.stack(ys)


def _has_source(split: str) -> bool:
    with open(Path(split) / "manifest.json") as f:
        return all("source" in it for it in json.load(f)["items"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m daa.diagnose", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a training run directory (config.yaml + checkpoints with ε_θ)")
    p.add_argument("--pairs", required=True, help="target-domain pairs: a data_shards.valset split")
    p.add_argument("--source", default=None, help="synthetic pairs: a valset split with source copies (default: "
                   "the --pairs split's own, or on-the-fly AWGN for denoising)")
    p.add_argument("--checkpoint", default=None, help="checkpoint tag (default: the latest complete one)")
    p.add_argument("--alpha", type=float, default=None,
                   help="α (default: the run's ramp α at its last checkpoint, without a cool-down: what the noise "
                        "loss weighs while it acts)")
    p.add_argument("--batches", type=int, default=4, help="batches per t-quartile")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=None, help="crop size (default: the run's data.patch_size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the tables' numbers here")
    p.add_argument("--only-conditions", action="store_true",
                   help="skip the gradient table; only which real-slot image ε_θ rewards (daa.condition_preference)")
    a = p.parse_args(argv)
    try:
        if a.threads:
            torch.set_num_threads(a.threads)
        if a.batches < 1 or a.batch < 1:
            raise ValueError("--batches and --batch must be >= 1")
        from .training.evaluation import to_range

        cfg, obj, seen = load_run(a.run_dir, a.checkpoint)
        o = cfg.objective
        alpha = a.alpha if a.alpha is not None else alpha_at(seen, o, cooldown=False)
        patch = a.patch or cfg.data.patch_size
        gen = torch.Generator().manual_seed(a.seed)
        n = max(64, a.batch * a.batches)
        x_r, y_r = crops_from_split(a.pairs, patch, n, gen)
        if a.source or _has_source(a.pairs):
            x_s, y_s = crops_from_split(a.source or a.pairs, patch, n, gen, domain="source")
            how = f"source copies of {a.source or a.pairs}"
        elif cfg.data.task == "denoise":
            _, y_s = crops_from_split(a.pairs, patch, n, gen)
            lo, hi = cfg.data.awgn_sigma
            sig = (lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen)) / 255.0
            x_s = y_s + sig * torch.randn(y_s.shape, generator=gen)
            how = f"on-the-fly AWGN σ∈[{lo:g},{hi:g}] on clean crops of {a.pairs}"
        else:
            raise ValueError(f"{a.pairs} has no source-degraded copies: give --source SPLIT for task {cfg.data.task}")
        rng = cfg.data.range()
        pairs = {k: to_range(v, rng) for k, v in dict(x_s=x_s, y_s=y_s, x_r=x_r, y_r=y_r).items()}
        res = {} if a.only_conditions else run_probes(obj, pairs, alpha, a.batches, a.batch, a.seed)
        prefs = run_preferences(obj, pairs, alpha, a.batches, a.batch, a.seed)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {a.run_dir} ({cfg.objective.mode}, {seen} images seen, α={alpha:.4f}); real pairs {a.pairs}; "
          f"synthetic pairs: {how}; {a.batches}×{a.batch} crops of {patch}² per t-quartile")
    if res:
        print(table_md(res))
    print("\nα·L_noise with R's real output replaced (% of its value as trained; mean ± s.e. over batches):")
    print(pref_table_md(prefs))
    if a.json:
        out = {"run": str(a.run_dir), "alpha": alpha, "images_seen": seen, "conditions": prefs}
        if res:
            out["rows"] = {k: asdict(v) for k, v in res.items()}
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
