"""Which real-world output does ε_θ reward? The noise loss evaluated with R's real output swapped for alternatives.

`daa.diagnose` reads the *local* pull of α·L_noise on R's real output ŷ_r (its gradient). This reads the loss
itself at a few whole images put in ŷ_r's place, under the same draws (t, γ, ε, channel-shuffle and swap masks), so
each difference is paired and its sampling noise small:

- **clean − restored**: α·L_noise with the real slot holding the clean image y_r, minus with ŷ_r. < 0: the loss
  would be lower if R restored the real image perfectly — the pull the paper describes is there to be followed.
- **blur(restored) − restored**: the same for ŷ_r smoothed (Gaussian σ 1.5 px, as `daa.diagnose`'s smoothing
  direction). < 0: smoothing R's output lowers the loss.
- **blur(clean) − clean**: the clean image against its smoothed copy. < 0: ε_θ prefers a real-slot image without
  fine detail even when it is clean — a reward for smoothness as such, which no restorer can follow without losing
  detail.
- **input − restored**: the unrestored input x_r in the real slot (how much restoring matters to ε_θ at all).
- **synthetic: clean − restored**: the reference on the synthetic slot (y_s for ŷ_s, real slot as trained): ε_θ
  uses its conditions at all only if this is < 0.

Each is reported as a percentage of α·L_noise at the outputs as trained, mean ± standard error over batches, per
quartile of t and over all t. The loss includes the residual-swapped negatives and the triplet term where the run
uses them (changing ŷ_r changes the negative x_s + r_r too): it is the loss R's update sees.
"""
from __future__ import annotations

import math

import torch

from .objective import DAAObjective, StepDraws
from .probe_batches import quartile_batches, smoothing_direction

VARIANTS = ("clean − restored", "blur(restored) − restored", "blur(clean) − clean", "input − restored",
            "synthetic: clean − restored")


def _blur(y: torch.Tensor) -> torch.Tensor:
    return y + smoothing_direction(y)


@torch.no_grad()
def preference_batch(obj: DAAObjective, x_s: torch.Tensor, y_s: torch.Tensor, x_r: torch.Tensor, y_r: torch.Tensor,
                     alpha: float, draws: StepDraws, y_ref: torch.Tensor | None = None) -> tuple[float, dict]:
    """(α·L_noise as trained, {variant: its difference}) for one batch under fixed draws."""
    if obj.cfg.mode == "baseline":
        raise ValueError("the diagnostic needs a run trained with a diffusion model (objective mode daa or daa_ref)")
    r_s, r_r = obj.restore_pair(x_s, x_r)
    batch = {"x_s": x_s, "y_s": y_s, "x_r": x_r, **({"y_ref": y_ref} if y_ref is not None else {})}

    def loss(real_out: torch.Tensor, syn_out: torch.Tensor | None = None) -> float:
        rs = r_s if syn_out is None else syn_out - x_s
        out = obj.loss_from_residuals(batch, rs, real_out - x_r, alpha, draws)
        return float(out["loss"] - out["pix"])  # α·L_noise

    y_hat_r = x_r + r_r
    base = loss(y_hat_r)
    clean = loss(y_r)
    return base, {
        "clean − restored": clean - base,
        "blur(restored) − restored": loss(_blur(y_hat_r)) - base,
        "blur(clean) − clean": loss(_blur(y_r)) - clean,
        "input − restored": loss(x_r) - base,
        "synthetic: clean − restored": loss(y_hat_r, syn_out=y_s) - base,
    }


def run_preferences(obj: DAAObjective, pairs: dict[str, torch.Tensor], alpha: float, batches: int, batch: int,
                    seed: int = 0) -> dict[str, dict]:
    """Per t-quartile and 'all': {'loss': mean α·L_noise as trained, variant: (mean %, standard error %)}, on the
    crops and draws daa.diagnose's gradient table reads (probe_batches.quartile_batches, same seed)."""
    out: dict[str, dict] = {}
    every: list[tuple[float, dict]] = []
    for label, group in quartile_batches(obj, pairs, batches, batch, seed):
        rows = [preference_batch(obj, x_s, y_s, x_r, y_r, alpha, d, y_ref=y_ref)
                for x_s, y_s, x_r, y_r, d, y_ref in group]
        out[label] = summarize(rows)
        every += rows
    out["all"] = summarize(every)
    return out


def summarize(rows: list[tuple[float, dict]]) -> dict:
    """Mean loss and, per variant, the mean difference and its standard error, both in % of the mean loss."""
    base = sum(b for b, _ in rows) / len(rows)
    res: dict = {"loss": base}
    for k in VARIANTS:
        v = [d[k] for _, d in rows]
        m = sum(v) / len(v)
        se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan")
        scale = 100.0 / base if base > 0 else float("nan")
        res[k] = (m * scale, se * scale)
    return res


def table_md(res: dict[str, dict]) -> str:
    head = "| t | α·L_noise as trained | " + " | ".join(f"{k} (%)" for k in VARIANTS) + " |"
    lines = [head, "|" + "---|" * (len(VARIANTS) + 2)]
    for t, r in res.items():
        cells = " | ".join("–" if math.isnan(r[k][0]) else f"{r[k][0]:+.2f} ± {r[k][1]:.2f}" for k in VARIANTS)
        lines.append(f"| {t} | {r['loss']:.4g} | {cells} |")
    return "\n".join(lines)
