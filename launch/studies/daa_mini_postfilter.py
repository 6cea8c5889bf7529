"""DAA-mini's post-filter control (used by launch/studies/daa_mini.py): a trained run's restored outputs smoothed by a
Gaussian, with no training. Its σ is chosen on a validation split's target pairs (the highest mean PSNR over
SIGMAS, σ = 0 included: the unfiltered run) and then applied unchanged to every split it is scored on, so a split
scored with it has chosen nothing.

It answers one question about a DAA gain on denoising: does plain smoothing of the baseline's outputs do as well?
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

SIGMAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
"""Candidate Gaussian σ in pixels of the restored image (0 = no filter)."""


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Each channel of N×C×H×W images blurred by an isotropic Gaussian of `sigma` px (reflected borders); the
    images and channels are not mixed. σ = 0 returns the input."""
    from scipy.ndimage import gaussian_filter

    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected N×C×H×W images, got shape {x.shape}")
    if sigma == 0:
        return x
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=4.0)


def restore(run_dir: Path, split: Path, domain: str) -> tuple[np.ndarray, np.ndarray]:
    """(the run's EMA restorer's outputs clamped to [0, 1], the clean images) on one domain of a valset split."""
    import torch

    from daa.export import load_restorer
    from daa.training.evaluation import restore_batches
    from data_shards.valset import load_valset

    torch.set_num_threads(1)
    net, meta = load_restorer(run_dir / "export" / "restorer_ema.safetensors")
    x, y = load_valset(str(split), domain=domain)
    with torch.no_grad():
        r = restore_batches(net, x, tuple(meta["value_range"]), "cpu", batch=8).clamp(0, 1)
    return r.numpy(), y.numpy()


def score(r: np.ndarray, y: np.ndarray, y_metric: bool) -> dict:
    """The same fields as daa_mini_scoring.evaluate_split (PSNR capped as there)."""
    import torch
    from daa_mini_scoring import PSNR_CAP

    from daa import metrics

    rt, yt = torch.from_numpy(np.clip(r, 0, 1)), torch.as_tensor(y)
    each = np.minimum(metrics.psnr(rt, yt), PSNR_CAP).tolist()
    out = {"psnr": float(np.mean(each)), "ssim": float(np.mean(metrics.ssim(rt, yt).tolist())), "psnr_each": each,
           "n": len(each)}
    if y_metric:
        out["psnr_y"] = float(np.mean(metrics.psnr_y(rt, yt).tolist()))
    return out


def choose_sigma(r: np.ndarray, y: np.ndarray, sigmas=SIGMAS) -> tuple[float, dict[str, float]]:
    """The σ of `sigmas` with the highest mean target PSNR (ties: the smaller σ), and every candidate's PSNR."""
    grid = {f"{s:g}": score(smooth(r, s), y, False)["psnr"] for s in sigmas}
    best = max(sigmas, key=lambda s: (grid[f"{s:g}"], -s))
    return float(best), grid


def postfilter_result(run_dir: Path, paths: dict[str, Path], split: str, choose_on: str, y_metric: bool,
                      cache: Path, sigmas=SIGMAS, run_id: str = "") -> dict:
    """Score run_dir's outputs smoothed by the σ chosen on `choose_on`'s target pairs (cached in `cache`, keyed by
    `run_id`, the choosing split's content and the candidates) on `split`'s target and source pairs."""
    from daa_mini_data import digest

    key = {"run_id": run_id, "choose_on": choose_on, "choose_digest": digest(paths[choose_on]),
           "sigmas": [float(s) for s in sigmas]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    chosen = json.loads(cache.read_text()) if cache.is_file() else None
    if chosen is None or {k: chosen.get(k) for k in key} != key:
        r, y = restore(run_dir, paths[choose_on], "target")
        sigma, grid = choose_sigma(r, y, sigmas)
        chosen = {**key, "sigma": sigma, "grid_psnr": grid}
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(chosen, indent=1))
        tmp.replace(cache)
    res = {}
    for domain, sp in (("target", paths[split]), ("source", paths[f"source_{split}"])):
        r, y = restore(run_dir, sp, domain)
        res[domain] = score(smooth(r, chosen["sigma"]), y, y_metric)
    return {**res, "sigma": chosen["sigma"], "choose_on": choose_on, "sigma_grid_psnr": chosen["grid_psnr"]}


def resolve_arm(arm, spec: dict, arms: list, reference: str, splits: tuple[str, ...]):
    """A postfilter arm of a plan with its `of` arm resolved (by name, in the same study) and its `choose_on` split
    named as the study's scored splits are (valpool → valpool_cam on the camera reference); other arms unchanged."""
    if arm.variant != "postfilter":
        return arm
    of = next((a for a in arms if a.name == spec.get("of")), None)
    if of is None or of.variant == "postfilter":
        raise ValueError(f"arm {arm.name}: `of` must name another trained arm of the study, got {spec.get('of')!r}")
    choose = str(spec.get("choose_on", ""))
    if choose not in splits:
        raise ValueError(f"arm {arm.name}: `choose_on` must be a split ({', '.join(splits)}), got {choose!r}")
    return dataclasses.replace(arm, of=of, choose_on=choose + ("_cam" if reference == "camera" else ""))


def run(one_run, out: Path, task: str, arm, seed: int, paths: dict[str, Path], extra: list[str], threads: int,
        split: str, y_metric: bool, commit: str | None) -> dict:
    """The post-filter arm on `split`, as daa_mini.one_run scores a trained arm: the `of` arm's run of this seed
    (trained and scored through `one_run` if missing, so validation is scored first), its outputs smoothed by the σ
    they chose on `choose_on`; the result is cached like a run's and reused while its inputs are unchanged."""
    from daa_mini_data import log, result_path

    src = one_run(out, task, arm.of, seed, paths, extra, threads, split)
    one_run(out, task, arm.of, seed, paths, extra, threads, arm.choose_on)
    res_path = result_path(out, task, arm.name, seed, split)
    ident = {"of": arm.of.name, "of_config_digest": src["config_digest"], "data_digest": src["data_digest"],
             "eval_digest": src["eval_digest"], "choose_on": arm.choose_on, "sigmas": [float(s) for s in SIGMAS]}
    res = json.loads(res_path.read_text()) if res_path.is_file() else None
    if res is not None and all(res.get(k) == v for k, v in ident.items()):
        return {**res, "variant": arm.name}
    scored = postfilter_result(out / task / arm.of.name / f"s{seed}", paths, split, arm.choose_on, y_metric,
                               res_path.parent / "sigma.json", run_id=src["config_digest"] + src["data_digest"])
    res = {"task": task, "variant": arm.name, "base_variant": "postfilter", "seed": seed, "split": split, **ident,
           "config_digest": "postfilter:" + src["config_digest"], "commit": commit, **scored, "train_s": 0.0}
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.write_text(json.dumps(res, indent=1))
    log(f"{task}/{arm.name}/s{seed} [{split}]: target {res['target']['psnr']:.2f} dB, source "
        f"{res['source']['psnr']:.2f} dB (σ = {res['sigma']:g} px, chosen on {arm.choose_on})")
    return res
