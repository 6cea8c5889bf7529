"""Does a restorer keep the scene's fine detail, or smooth it away with the noise? Per photo of a DAA-mini split.

The per-photo tables of docs/RESULTS.md show DAA's denoising gain following how smooth a photo is, not where the
oracle has headroom. This measures that directly, from the restored crops, with two numbers per photo (sums over
its crops, then the ratio; mean over seeds):

- **detail kept**: the projection of the output's fine detail on the clean image's, ⟨H r, H y⟩ / ⟨H y, H y⟩, with
  H the high-pass I − G_σ (Gaussian, σ = 1.5 px). Noise left in the output is uncorrelated with the clean detail and
  averages out of the numerator, so this reads what the restorer *removed* of the scene: 1 = every edge and texture
  kept at full contrast, 0.7 = 30 % of the detail's amplitude smoothed away.
- **residual high-pass error**: ‖H(r − y)‖² / ‖H y‖² — detail lost and noise left, both, relative to the detail.

    python launch/studies/daa_mini_detail.py --task camnoise --split test_cam \\
        --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam --seeds 0,1,2

Reads the runs' exported EMA restorers (runs/daa_mini/<task>/<arm>/s<seed>) and the split written by
launch/studies/daa_mini.py; writes nothing unless --json is given. A measurement for the report, not a training
harness: nothing in the study's protocol is chosen from it.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIGMA = 1.5


def high_pass(x: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """x − Gaussian(x), per channel, reflect-padded; x: (N, C, H, W): minus daa.diagnose's smoothing step."""
    from daa.probe_batches import smoothing_direction

    return -smoothing_direction(x, sigma)


def detail_terms(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, np.ndarray]:
    """Per crop, the three sums the ratios are made of: ⟨H r, H y⟩, ‖H(r − y)‖² and ‖H y‖²."""
    hr, hy = high_pass(restored.double()), high_pass(clean.double())
    return {"dot": (hr * hy).flatten(1).sum(1).numpy(), "err": (hr - hy).pow(2).flatten(1).sum(1).numpy(),
            "ref": hy.pow(2).flatten(1).sum(1).numpy()}


def ratios(terms: dict[str, np.ndarray], idx) -> tuple[float, float]:
    """(detail kept, residual high-pass error) of a group of crops, pooled: sums over the crops, then the ratio (a
    flat crop has almost no detail, and its ratio alone would be noise)."""
    ref = max(float(terms["ref"][idx].sum()), 1e-12)
    return float(terms["dot"][idx].sum()) / ref, float(terms["err"][idx].sum()) / ref


def restore(run: Path, x: torch.Tensor) -> torch.Tensor:
    from daa.export import load_restorer
    from daa.training.evaluation import restore_batches

    net, meta = load_restorer(run / "export" / "restorer_ema.safetensors")
    with torch.no_grad():
        return restore_batches(net, x, tuple(meta["value_range"]), "cpu", batch=8).clamp(0, 1)


def table(task: str, split: Path, runs: Path, arms: list[str], seeds: list[int]) -> tuple[str, dict]:
    from daa_mini_scoring import split_photos

    from data_shards.valset import load_valset

    x, y = load_valset(str(split), domain="target")
    photos = split_photos(split)
    cols = ["input", *arms]
    terms = {"input": [detail_terms(x, y)]}
    for arm in arms:
        found = [p for s in seeds if (p := runs / task / arm / f"s{s}" / "export" / "restorer_ema.safetensors")
                 .is_file()]
        if not found:
            raise SystemExit(f"error: no exported restorer for {task}/{arm} (seeds {seeds}) under {runs}")
        terms[arm] = [detail_terms(restore(p.parents[1], x), y) for p in found]
    groups = defaultdict(list)
    for i, name in enumerate(photos):
        groups[name].append(i)
    head = "| photo | crops | " + " | ".join(f"kept: {c}" for c in cols) + " | " + \
        " | ".join(f"HP error: {c}" for c in cols) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(cols))]
    out = {}
    for name in sorted(groups) + ["all"]:
        idx = np.array(groups[name] if name != "all" else range(len(photos)))
        # each seed's pooled ratio, then the mean over seeds
        per = {c: np.mean([ratios(t, idx) for t in terms[c]], 0) for c in cols}
        out[name] = {"crops": len(idx), "kept": {c: float(per[c][0]) for c in cols},
                     "err": {c: float(per[c][1]) for c in cols}}
        label = f"**{name}**" if name == "all" else name
        lines.append(f"| {label} | {len(idx)} | " + " | ".join(f"{per[c][0]:.3f}" for c in cols) + " | " +
                     " | ".join(f"{per[c][1]:.3f}" for c in cols) + " |")
    return "\n".join(lines), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="a DAA-mini task folder (e.g. camnoise, noise)")
    p.add_argument("--split", required=True, help="the split folder under the task's data (e.g. test_cam, val)")
    p.add_argument("--arms", required=True, help="comma list of run folders (arm names)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data", default=".data/daa_mini2")
    p.add_argument("--runs", default="runs/daa_mini")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the per-photo numbers here")
    p.add_argument("--md", help="also write the table here, under --title (make reproduce: docs/results/detail.md)")
    p.add_argument("--append", action="store_true", help="with --md: add to the file instead of replacing it")
    p.add_argument("--title", default="", help="the heading of the table in --md")
    a = p.parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds must be a comma list of integers, got {a.seeds!r}") from None
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    split = resolve(a.data) / a.task / a.split
    if not (split / "manifest.json").is_file():
        raise SystemExit(f"error: no split at {split} (write it with launch/studies/daa_mini.py)")
    torch.set_num_threads(a.threads)
    md, out = table(a.task, split, resolve(a.runs), a.arms.split(","), seeds)
    print(md)
    if a.md:
        text = f"### {a.title or f'{a.task} {a.split}'}\n\n{md}\n\n"
        with open(a.md, "a" if a.append else "w") as f:
            f.write(text)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
