"""DAA-mini's controls: the post-filter (Gaussian σ chosen on validation, no training), the plan's control arms
(placebo shards, official hyper-parameters) and how a plan names them."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "launch" / "studies"))
_spec = importlib.util.spec_from_file_location("daa_mini", ROOT / "launch" / "studies" / "daa_mini.py")
daa_mini = importlib.util.module_from_spec(_spec)
sys.modules["daa_mini"] = daa_mini  # dataclasses look their module up
_spec.loader.exec_module(daa_mini)
import daa_mini_postfilter as postfilter  # noqa: E402

PLAN = ROOT / "launch" / "studies" / "plans" / "daa_mini.yaml"


def _clean(n=3, size=32, seed=0):
    """Smooth images (a few low-frequency waves per channel) in [0.2, 0.8]: what a Gaussian barely changes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        for c in range(3):
            f = rng.uniform(0.5, 1.5, 2)
            out[i, c] = 0.5 + 0.3 * np.sin(2 * np.pi * (f[0] * yy + f[1] * xx) + rng.uniform(0, 6))
    return out


def test_smooth_keeps_channels_and_means_and_removes_noise():
    x = np.zeros((2, 3, 24, 24), np.float32)
    x[:, 1] = np.random.default_rng(1).random((2, 24, 24))
    assert np.array_equal(postfilter.smooth(x, 0.0), x)
    s = postfilter.smooth(x, 1.0)
    assert s.shape == x.shape and not s[:, [0, 2]].any()  # channels are not mixed
    assert abs(s[:, 1].mean() - x[:, 1].mean()) < 1e-3 and s[:, 1].std() < 0.5 * x[:, 1].std()
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        postfilter.smooth(x, -1.0)
    with pytest.raises(ValueError, match="N×C×H×W"):
        postfilter.smooth(x[0], 1.0)


def test_choose_sigma_picks_smoothing_only_where_it_helps():
    y = _clean()
    noisy = y + 0.08 * np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    sigma, grid = postfilter.choose_sigma(noisy, y)
    assert sigma > 0 and grid[f"{sigma:g}"] == max(grid.values()) and set(grid) == {f"{s:g}" for s in
                                                                                     postfilter.SIGMAS}
    assert grid[f"{sigma:g}"] > grid["0"] + 1.0  # white noise on smooth images: smoothing gains dB
    assert postfilter.choose_sigma(y, y)[0] == 0.0  # nothing to remove: the unfiltered output wins


def test_postfilter_run_chooses_on_validation_and_applies_it_unchanged(tmp_path, monkeypatch):
    """The σ is chosen on `choose_on`'s target pairs (the source run is scored there first), then applied to the
    scored split's target and source pairs; the result is cached, and redone when the source run changes."""
    y_val, y_test = _clean(seed=3), _clean(seed=4)
    rng = np.random.default_rng(5)
    noisy = {("val", "target"): y_val + 0.08 * rng.standard_normal(y_val.shape).astype(np.float32),
             ("test", "target"): y_test + 0.08 * rng.standard_normal(y_test.shape).astype(np.float32),
             ("test", "source"): y_test.copy()}
    clean = {"val": y_val, "test": y_test}
    restored = []

    def fake_restore(run_dir, split, domain):
        restored.append((split.name, domain))
        return noisy[(split.name, domain)], clean[split.name]

    monkeypatch.setattr(postfilter, "restore", fake_restore)
    monkeypatch.setattr("daa_mini_data.digest", lambda *p: "d-" + "-".join(x.name for x in p))
    calls = []
    digest = {"value": "cfg1"}

    def fake_one_run(out, task, arm, seed, paths, extra, threads, split):
        calls.append((arm.name, split))
        return {"config_digest": digest["value"], "data_digest": "data", "eval_digest": f"e-{split}"}

    base = daa_mini.Arm("baseline-x", "baseline")
    arm = daa_mini.Arm("post", "postfilter", of=base, choose_on="val")
    paths = {"val": tmp_path / "val", "test": tmp_path / "test", "source_test": tmp_path / "test"}
    run = lambda: postfilter.run(fake_one_run, tmp_path, "camdark", arm, 0, paths, [], 1, "test", False,  # noqa: E731
                                 "abc")
    res = run()
    assert calls == [("baseline-x", "test"), ("baseline-x", "val")]
    assert restored[0] == ("val", "target") and set(restored[1:]) == {("test", "target"), ("test", "source")}
    grid = res["sigma_grid_psnr"]
    assert res["sigma"] > 0 and grid[f"{res['sigma']:g}"] == max(grid.values()) and res["choose_on"] == "val"
    # test is scored with that σ (not re-chosen on test): its target PSNR is the smoothed noisy test images'
    want = postfilter.score(postfilter.smooth(noisy[("test", "target")], res["sigma"]), y_test, False)["psnr"]
    assert res["target"]["psnr"] == pytest.approx(want) and res["target"]["n"] == 3
    assert res["source"]["psnr"] < 60  # the clean source copies, blurred: smoothing costs the source split
    saved = json.loads((tmp_path / "camdark" / "post" / "s0" / "result.json").read_text())
    assert saved["base_variant"] == "postfilter" and saved["of"] == "baseline-x" and saved["commit"] == "abc"
    restored.clear()
    assert run()["target"] == res["target"] and not restored  # cached
    digest["value"] = "cfg2"  # the baseline was retrained: σ is chosen again, the result redone
    run()
    assert restored and restored[0] == ("val", "target")


def _plan_arms(study: str) -> dict:
    st = next(s for s in daa_mini.load_plan(PLAN) if s.name == study)
    return st, {a.row: a for a in st.arms}


def test_control_studies_in_the_plan():
    """The controls sit beside the 16k baseline and DAA, val then the merged test pools, the same arms."""
    val, arms = _plan_arms("camdark-controls-val")
    test, tarms = _plan_arms("camdark-controls")
    assert (val.eval_split, test.eval_split, val.seeds, test.seeds) == ("valpool_cam", "testpool_cam", [0, 1, 2],
                                                                        [0, 1, 2])
    assert arms == tarms and {"baseline", "daa", "placebo", "post-filter", "official"} <= set(arms)
    assert arms["placebo"].variant == "placebo" and arms["placebo"].sets == arms["daa"].sets  # only the data differ
    pf = arms["post-filter"]
    assert (pf.of, pf.choose_on) == (arms["baseline"], "valpool_cam")
    budget = {s for a in arms.values() for s in a.sets if s.startswith("run.total_images=")}
    assert budget == {"run.total_images=16000"}  # every trained arm at the same image budget


def test_official_arm_resolves_to_the_official_hyper_parameters(tmp_path):
    """α = 0.2, one learning rate 1e-4 for both networks, ε_θ dropout 0.2 (the 16k DAA arm: α 3, R 1e-3, no
    dropout), through the same config the trainer loads."""
    from daa.config import load_config
    from daa.models import build_diffusion_unet

    st, arms = _plan_arms("camdark-controls-val")
    paths = {"shards": tmp_path, "placebo": tmp_path / "p"}
    cfg = {}
    for row in ("official", "daa", "placebo"):
        sets = daa_mini.run_overrides(st.task, arms[row], 0, paths, tmp_path / row, list(st.sets))
        cfg[row] = load_config("daa_mini", sets)
    o = cfg["official"]
    assert (o.objective.alpha_max, o.optim.lr, o.optim.diffusion_lr) == (0.2, 1e-4, None)
    drops = [m.p for m in build_diffusion_unet(o.model.diffusion_preset, **o.model.diffusion_args).modules()
             if isinstance(m, torch.nn.Dropout)]
    assert drops and set(drops) == {0.2}
    d = cfg["daa"]
    assert (d.objective.alpha_max, d.optim.lr, d.optim.diffusion_lr) == (3.0, 1e-3, 1e-4)
    assert {m.p for m in build_diffusion_unet(d.model.diffusion_preset, **d.model.diffusion_args).modules()
            if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert cfg["placebo"].data.shards == str(tmp_path / "p") and cfg["daa"].data.shards == str(tmp_path)
    assert cfg["placebo"].objective.mode == "daa"


@pytest.mark.parametrize("arm, words", [
    ("{name: pf, variant: postfilter, choose_on: val}", "`of` must name another trained arm"),
    ("{name: pf, variant: postfilter, of: nope, choose_on: val}", "`of` must name another trained arm"),
    ("{name: pf, variant: postfilter, of: baseline, choose_on: train}", "`choose_on` must be a split"),
])
def test_bad_postfilter_arm_is_a_one_line_error(arm, words, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"studies:\n  - {{name: a, task: noise, arms: [{{name: baseline}}, {arm}]}}\n")
    with pytest.raises(SystemExit) as e:
        daa_mini.load_plan(plan)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_placebo_needs_a_corpus_task(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("studies:\n  - {name: a, task: polyu, arms: [{name: baseline}, {name: p, variant: placebo}]}\n")
    with pytest.raises(SystemExit, match="placebo needs a corpus task"):
        daa_mini.load_plan(plan)


def test_paired_bootstrap_interval():
    import daa_mini_controls as controls

    photos = ["p1", "p1", "p2", "p3", "p3", "p3"]
    base = {s: [20.0 + s + i for i in range(6)] for s in (0, 1, 2)}
    shifted = {s: [v + 0.5 for v in base[s]] for s in (0, 1, 2)}
    d = controls.paired_bootstrap(shifted, base, photos)
    assert d["seeds"] == [0, 1, 2] and d["mean"] == pytest.approx(0.5) and d["ci95"] == pytest.approx([0.5, 0.5])
    # +1 dB on photo p1's two crops only: crop-weighted mean 2/6 dB; photo resampling widens the interval
    gain = {s: [base[s][i] + (1.0 if photos[i] == "p1" else 0.0) for i in range(6)] for s in (0, 1, 2)}
    d = controls.paired_bootstrap(gain, base, photos)
    assert d["mean"] == pytest.approx(2 / 6) and d["ci95"][0] < d["mean"] < d["ci95"][1] and d["ci95"][0] >= 0
    one = controls.paired_bootstrap({0: gain[0], 5: gain[0]}, base, photos)  # only seed 0 is shared
    assert one["seeds"] == [0] and math.isnan(one["ci95"][0])
    assert controls.paired_bootstrap({7: gain[0]}, base, photos) == {"seeds": []}


def test_controls_md_keeps_the_written_reading(tmp_path):
    import daa_mini_controls as controls

    md = tmp_path / "controls.md"
    controls.write_md(md, "T1")
    assert md.read_text().endswith("T1")
    md.write_text("# Reading\n\nwritten by a person\n\n" + md.read_text())
    controls.write_md(md, "T2")
    text = md.read_text()
    assert text.startswith("# Reading") and "written by a person" in text and text.endswith("T2") and "T1" not in text


def test_arms_filter_names_only_arms_of_the_chosen_studies(tmp_path):
    with pytest.raises(SystemExit, match="--arms: nope not in the chosen studies"):
        daa_mini.main(["--plan", str(PLAN), "--studies", "camdark-controls-val", "--arms", "baseline-ema-16k,nope",
                       "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")])


def _diff(lo, hi, seeds=(0, 1, 2)):
    return {"seeds": list(seeds), "mean": (lo + hi) / 2, "per_seed": [(lo + hi) / 2] * len(seeds), "ci95": [lo, hi],
            "photos": 3, "source": [-0.5, 0.1]}


@pytest.mark.parametrize("vs_daa, vs_base, words", [
    ((-0.9, -0.2), (-0.2, 0.3), "**adaptation**"),
    ((-0.9, -0.2), (0.1, 0.4), "**partly adaptation**"),
    ((-0.2, 0.3), (0.2, 0.9), "**regularisation**"),
    ((0.1, 0.5), (0.6, 1.2), "**regularisation**"),
    ((-0.3, 0.2), (-0.1, 0.3), "**undecided**"),
])
def test_placebo_reading_follows_the_fixed_rules(vs_daa, vs_base, words):
    import daa_mini_controls as controls

    diffs = {"daa − baseline": _diff(0.2, 0.8), "placebo − daa": _diff(*vs_daa), "placebo − baseline": _diff(*vs_base)}
    assert controls.reading("placebo", diffs).startswith(words)
    assert controls.reading("placebo", {"placebo − daa": _diff(*vs_daa)}) == "open"


def test_postfilter_and_official_readings():
    import daa_mini_controls as controls

    base = {"daa − baseline": _diff(0.2, 0.8)}
    assert "beats DAA" in controls.reading("post-filter", {**base, "post-filter − daa": _diff(0.1, 0.9)})
    assert "as well as DAA" in controls.reading("post-filter", {**base, "post-filter − daa": _diff(-0.1, 0.9)})
    assert "DAA beats" in controls.reading("post-filter", {**base, "post-filter − daa": _diff(-0.9, -0.1)})
    one = _diff(-0.05, 0.1, seeds=(0,))
    one["ci95"] = [float("nan"), float("nan")]
    assert controls.reading("post-filter", {**base, "post-filter − daa": one}) == "open"
    drives = controls.reading("official", {**base, "official − baseline-lr1e-4": _diff(-0.2, 0.2),
                                           "official − daa": _diff(-0.8, -0.3)})
    assert drives.startswith("no gain") and "choices drive the gain" in drives
    same = controls.reading("official", {**base, "official − baseline-lr1e-4": _diff(0.1, 0.6),
                                         "official − daa": _diff(-0.2, 0.2)})
    assert same.startswith("gains") and "as much as" in same and "read as this project's do" in same


def test_controls_summary_spliced_by_make_results(tmp_path):
    import daa_mini_controls as controls
    import daa_mini_headline as headline

    test = {"study": "camdark-controls", "differences": {
        "daa − baseline": _diff(0.1, 0.5), "post-filter − baseline": _diff(0.4, 0.9),
        "post-filter − daa": _diff(0.05, 0.6), "placebo − baseline": _diff(0.2, 0.6),
        "placebo − daa": _diff(-0.2, 0.3)}}
    val = {"study": "camdark-controls-val", "differences": {"daa − baseline": _diff(0.3, 0.7)}}
    (tmp_path / "summary.json").write_text("[]")
    (tmp_path / "controls.json").write_text(json.dumps({"commits": ["0123456789abcdef"], "studies": [val, test]}))
    doc = tmp_path / "R.md"
    doc.write_text(f"{headline.BEGIN}\n{headline.END}\nx\n{controls.SUMMARY_BEGIN}\nOLD-TABLE\n{controls.SUMMARY_END}\nkept\n")
    assert headline.main(["--results", str(tmp_path), "--splice", str(doc), "--controls-splice", str(doc)]) == 0
    text = doc.read_text()
    assert "OLD-TABLE" not in text and text.endswith(f"{controls.SUMMARY_END}\nkept\n") and "0123456" in text
    placebo = next(ln for ln in text.splitlines() if ln.startswith("| placebo"))
    assert "**regularisation**" in placebo and "**+0.40** [+0.20, +0.60]" in placebo
    official = next(ln for ln in text.splitlines() if ln.startswith("| official"))
    assert official.count("not run") == 3 and official.endswith("| open |")
    doc.write_text(f"{headline.BEGIN}\n{headline.END}\n")  # controls.json present, no controls markers
    with pytest.raises(SystemExit, match="needs one <!-- daa-mini-controls -->"):
        headline.main(["--results", str(tmp_path), "--splice", str(doc), "--controls-splice", str(doc)])
