"""DAA-mini: its small networks, the PolyU scene split, the verdict rule, and a --quick run end to end."""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from daa.models import build_diffusion_unet, build_restorer, count_parameters

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("daa_mini", ROOT / "launch" / "studies" / "daa_mini.py")
daa_mini = importlib.util.module_from_spec(_spec)
sys.modules["daa_mini"] = daa_mini  # dataclasses look their module up
_spec.loader.exec_module(daa_mini)


@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 3, 64, 64), (1, 3, 5, 130)])
def test_mini_restorer_any_size_and_gradients(shape):
    torch.manual_seed(0)
    net = build_restorer("mini")
    assert count_parameters(net) == 227_596
    x = torch.rand(shape)
    r = net(x)
    assert r.shape == x.shape and torch.isfinite(r).all()
    r.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    torch.nn.init.zeros_(net.tail[-1].weight)
    torch.nn.init.zeros_(net.tail[-1].bias)
    assert net(x).abs().max() == 0  # it returns the residual: zero last layer → identity restoration


def test_diffusion_pixel_unshuffle_preset():
    torch.manual_seed(0)
    net = build_diffusion_unet("mini")
    assert net.cfg.pixel_unshuffle == 4 and net.size_multiple == 16
    x = torch.randn(3, 9, 17, 23, requires_grad=True)
    out = net(x, torch.rand(3))
    assert out.shape == (3, 3, 17, 23)
    out.square().mean().backward()
    assert x.grad is not None and x.grad[:, 3:].abs().sum() > 0  # the conditions get a gradient
    assert all(p.grad is not None for p in net.parameters())
    # f=2 on a 2×2 space-to-depth input equals f=1 on the unshuffled input with the same weights
    a = build_diffusion_unet("tiny", pixel_unshuffle=2)
    b = build_diffusion_unet("tiny", in_channel=36, out_channel=12)
    b.load_state_dict(a.state_dict())
    x, g = torch.randn(2, 9, 16, 16), torch.rand(2)
    torch.testing.assert_close(a(x, g), torch.nn.functional.pixel_shuffle(
        b(torch.nn.functional.pixel_unshuffle(x, 2), g), 2))
    with pytest.raises(ValueError, match="pixel_unshuffle"):
        build_diffusion_unet("tiny", pixel_unshuffle=0)


def test_polyu_split_by_scene(tmp_path):
    rng = np.random.default_rng(0)
    names = ["CamA_1_2_3_chair_1", "CamA_1_2_3_chair_2", "CamB_4_5_6_plant_3", "CamB_4_5_6_plant__7",
             "CamC_1_1_1_toy_5", "CamD_2_2_2_wall_9", "CamE_3_3_3_zoo_1"]
    for n in names:
        for kind in ("real", "mean"):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{n}_{kind}.JPG")
    split = daa_mini.polyu_split(tmp_path)
    scenes = split["scenes"]
    # three disjoint scene sets: sorted positions 0, 2 mod 4 train; 1 mod 4 test; 3 mod 4 validation
    assert scenes == {"train": ["CamA_1_2_3_chair", "CamC_1_1_1_toy", "CamE_3_3_3_zoo"],
                      "test": ["CamB_4_5_6_plant"],  # 'plant_' is the plant scene re-shot: both pairs go to test
                      "val": ["CamD_2_2_2_wall"]}
    assert [len(split[k]) for k in ("train", "test", "val")] == [4, 2, 1]
    for r, m in split["train"] + split["test"] + split["val"]:
        assert r.name.replace("_real.", "_mean.") == m.name
    (tmp_path / "CamD_2_2_2_wall_9_mean.JPG").unlink()
    with pytest.raises(SystemExit, match="no matching"):
        daa_mini.polyu_split(tmp_path)


def _rows(daa, base, oracle, src=(30.0, 30.0)):
    from daa_mini_report import _ms as ms
    return {"daa": {"target": ms(daa), "source": (src[0], 0), "n": len(daa)},
            "baseline": {"target": ms(base), "source": (src[1], 0), "n": len(base)},
            "oracle": {"target": ms(oracle), "source": (0, 0), "n": len(oracle)}}


def test_verdict_rule():
    v = daa_mini.verdict(_rows([25.5, 25.6, 25.7], [25.0, 25.1, 25.2], [28.5, 28.5, 28.5]))
    assert v["status"] == "reproduced" and math.isclose(v["gain_db"], 0.5) and v["missed"] == []
    # +0.5 dB but the seeds scatter by ±0.4: not 2× the pooled std
    v = daa_mini.verdict(_rows([25.1, 25.6, 26.1], [24.6, 25.1, 25.6], [28.5] * 3))
    assert v["status"] == "not reproduced" and v["missed"] == ["1.0× seed std < 2×"]
    # losing > 0.5 dB on the source test
    v = daa_mini.verdict(_rows([25.5, 25.6, 25.7], [25.0, 25.1, 25.2], [28.5] * 3, src=(29.0, 30.0)))
    assert v["status"] == "not reproduced" and v["missed"] == ["source -1.00 dB"]
    # the same misses where the oracle is < 3 dB above the baseline: no room to show adaptation
    v = daa_mini.verdict(_rows([25.5, 25.6, 25.7], [25.0, 25.1, 25.2], [27] * 3, src=(29.0, 30.0)))
    assert v["status"] == "inconclusive" and not v["headroom_ok"] and math.isclose(v["oracle_gap_db"], 1.9)
    # above the oracle + 0.1 (which also leaves no headroom)
    v = daa_mini.verdict(_rows([25.5, 25.6, 25.7], [25.0, 25.1, 25.2], [25.4] * 3))
    assert v["status"] == "inconclusive" and "DAA above the oracle" in v["missed"]
    # the rule holds without headroom too: reproduced is reproduced
    assert daa_mini.verdict(_rows([25.5, 25.6, 25.7], [25.0, 25.1, 25.2], [27] * 3))["status"] == "reproduced"
    assert daa_mini.verdict(_rows([25.6], [25.0], [27.0]))["status"].startswith("preliminary")


def test_quick_end_to_end(tmp_path):
    """--quick: a pool-P-only corpus, shards, 2 tiny runs, evaluation, tables and plots; a rerun trains nothing."""
    cmd = [sys.executable, "launch/studies/daa_mini.py", "--quick", "--data", str(tmp_path / "data"), "--out",
           str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summ = json.loads((tmp_path / "report" / "summary.json").read_text())
    rows = summ[0]["rows"]
    assert set(rows) == {"input", "baseline", "daa"}
    assert all(np.isfinite(rows[k]["target"][0]) for k in rows)
    assert (tmp_path / "report" / "noise.png").stat().st_size > 1000
    res = json.loads((tmp_path / "runs" / "noise" / "daa" / "s0" / "result.json").read_text())
    assert res["target"]["n"] == res["source"]["n"] > 0
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0 and "(0 to train)" in r2.stdout, r2.stdout[-2000:]
    # a cached result of another training config is never reported as this one's, nor overwritten
    before = (tmp_path / "runs" / "noise" / "daa" / "s0" / "result.json").read_bytes()
    r3 = subprocess.run(cmd + ["--set", "optim.lr=0.01"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r3.returncode == 1 and "another training config" in r3.stdout, r3.stdout[-2000:]
    assert (tmp_path / "runs" / "noise" / "daa" / "s0" / "result.json").read_bytes() == before


@pytest.mark.parametrize("argv, words", [
    (["--tasks", "haze"], "unknown task 'haze'"),
    (["--tasks", "noise", "--variants", "daa,best"], "unknown variant 'best'"),
    (["--tasks", "noise", "--seeds", "0,x"], "--seeds must be a comma list"),
    (["--tasks", "polyu", "--polyu", "/nonexistent/polyu"], "needs the PolyU pairs"),
])
def test_bad_arguments_are_one_line_errors(argv, words, tmp_path):
    with pytest.raises(SystemExit) as e:
        daa_mini.main([*argv, "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")])
    msg = str(e.value)
    assert msg.startswith("error: ") and words in msg and "\n" not in msg
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()  # refused before touching anything


def test_plan_without_polyu_pairs_skips_its_polyu_studies(tmp_path, capsys):
    """`make reproduce` on a machine without the PolyU pairs runs the rest of the plan; naming a PolyU study is an
    error. --report-only keeps it cheap: nothing is trained, and the other study stops at its missing split."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("""studies:
  - {name: real, task: polyu, split: val, seeds: [0], arms: [{name: baseline}]}
  - {name: synth, task: noise, split: val, seeds: [0], arms: [{name: baseline}]}
""")
    common = ["--plan", str(plan), "--polyu", str(tmp_path / "nope"), "--data", str(tmp_path / "d"),
              "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        daa_mini.main([*common, "--studies", "real"])
    assert str(e.value).startswith("error: task polyu needs the PolyU pairs")
    with pytest.raises(FileNotFoundError, match="noise/val"):  # went on to the other study (it has no data here)
        daa_mini.main([*common, "--report-only"])
    assert "skipping real: no PolyU pairs" in capsys.readouterr().out


def test_table_with_one_seed_says_so():
    inputs = {k: {"psnr": 20.0, "ssim": 0.5} for k in ("target", "source")}
    results = [{"variant": v, "seed": 0, "target": {"psnr": p, "ssim": 0.6}, "source": {"psnr": 24.0, "ssim": 0.7}}
               for v, p in (("baseline", 25.0), ("daa", 25.4))]
    from daa_mini_report import summarize

    arms = ["baseline", "daa"]
    md = daa_mini.table_md(summarize("noise", "t", inputs, results, arms))
    assert "no std from 1 seed" in md and "nan" not in md
    results += [dict(r, seed=1) for r in results]
    assert "pooled seed std 0.00" in daa_mini.table_md(summarize("noise", "t", inputs, results, arms))
    # a validation study reports the differences but never a verdict
    md = daa_mini.table_md(summarize("noise", "t", inputs, results, arms, split="val"))
    assert "validation split: no verdict" in md and "reproduced" not in md


def test_plan_scores_one_run_on_both_splits(tmp_path):
    """A plan with a validation and a test study sharing an arm: the run is trained once and scored on each split;
    the test result is result.json, the validation one result_val.json; rerunning trains nothing."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("""studies:
  - {name: pick, task: noise, split: val, seeds: [0], arms: [{name: baseline}, {name: daa-a2, variant: daa,
     set: [objective.alpha_max=2.0]}], diagnose: [daa-a2]}
  - {name: final, task: noise, split: test, seeds: [0], arms: [{name: baseline}]}
""")
    cmd = [sys.executable, "launch/studies/daa_mini.py", "--quick", "--plan", str(plan), "--data",
           str(tmp_path / "data"), "--out", str(tmp_path / "runs")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = tmp_path / "runs" / "noise" / "baseline" / "s0"
    val, test = json.loads((run / "result_val.json").read_text()), json.loads((run / "result.json").read_text())
    assert (val["split"], test["split"]) == ("val", "test") and val["config_digest"] == test["config_digest"]
    assert val["target"]["psnr"] != test["target"]["psnr"]  # two different splits
    assert json.loads((tmp_path / "runs" / "noise" / "daa-a2" / "s0" / "result_val.json").read_text())[
        "base_variant"] == "daa"
    assert "(`pick`, val split)" in r.stdout and "(`final`, test split)" in r.stdout
    diag = (tmp_path / "runs" / "diagnostics.md").read_text()  # the diagnostic of the daa arm, per t-quartile
    assert "`noise/daa-a2`" in diag and diag.count("| t ") == 10 and diag.count("| all |") == 2  # two tables
    assert "blur(clean) − clean (%)" in diag
    # a diagnosis cached before daa.condition_preference gets its table added on a rerun, its rows kept
    js = tmp_path / "runs" / "noise" / "daa-a2" / "s0" / "diagnose.json"
    before = json.loads(js.read_text())
    js.write_text(json.dumps({k: v for k, v in before.items() if k != "conditions"}))
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0 and "(0 to train)" in r2.stdout, r2.stdout[-2000:]
    after = json.loads(js.read_text())
    assert after["rows"] == before["rows"] and after["conditions"] == before["conditions"]  # same draws, same numbers
    assert not list(js.parent.glob("*.conditions.json"))  # no temporary file left
    # --report-only lists a cached result under this plan's arm name, like a rerun (a folder may have been renamed)
    res = tmp_path / "runs" / "noise" / "daa-a2" / "s0" / "result_val.json"
    res.write_text(json.dumps({**json.loads(res.read_text()), "variant": "daa-renamed"}))
    r3 = subprocess.run(cmd + ["--report-only"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r3.returncode == 0 and "| daa-a2 |" in r3.stdout, r3.stdout[-2000:]


@pytest.mark.parametrize("text, words", [
    ("studies: []", "no studies"),
    ("studies:\n  - {name: a, task: haze, arms: [{name: baseline}]}", "unknown task 'haze'"),
    ("studies:\n  - {name: a, task: noise, split: train, arms: [{name: baseline}]}", "split must be one of val, test"),
    ("studies:\n  - {name: a, task: noise, split: fresh, arms: [{name: baseline}]}", "camera reference only"),
    ("studies:\n  - {name: a, task: noise, split: fresh2, arms: [{name: baseline}]}", "camera reference only"),
    ("studies:\n  - {name: a, task: noise, split: testpool, arms: [{name: baseline}]}", "camera reference only"),
    ("studies:\n  - {name: a, task: noise, arms: [{name: x, variant: best}]}", "unknown variant 'best'"),
    ("studies:\n  - {task: noise, arms: []}", "malformed"),
    ("studies:\n  - {name: a, task: noise, arms: [{name: baseline}], diagnose: [baseline]}", "not one of its DAA"),
    ("studies:\n  - {name: a, task: rain, reference: camera, arms: [{name: baseline}]}", "camera-noise task"),
    ("studies:\n  - {name: a, task: noise, reference: isp, arms: [{name: baseline}]}", "got 'isp'"),
])
def test_bad_plan_is_a_one_line_error(text, words, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    with pytest.raises(SystemExit) as e:
        daa_mini.main(["--plan", str(plan), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")])
    msg = str(e.value)
    assert msg.startswith("error: ") and words in msg and "\n" not in msg
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()


def test_a_labelled_arm_is_the_verdicts_daa_row():
    """The final studies label their chosen arm `daa` (run daa-a3 → row daa), which is what the verdict reads."""
    from daa_mini_report import summarize

    inputs = {k: {"psnr": 20.0, "ssim": 0.5} for k in ("target", "source")}
    results = [{"variant": v, "seed": s, "target": {"psnr": p + 0.01 * s, "ssim": 0.6},
                "source": {"psnr": 24.0, "ssim": 0.7}}
               for v, p in (("baseline", 25.0), ("daa-a3", 25.6), ("oracle", 27.0)) for s in range(3)]
    summ = summarize("rain", "t", inputs, results, [("baseline", "baseline"), ("daa-a3", "daa"),
                                                    ("oracle", "oracle")])
    assert summ["rows"]["daa"]["run"] == "daa-a3" and summ["verdict"]["status"] == "reproduced"
    assert "| daa (`daa-a3`) |" in daa_mini.table_md(summ)


def test_per_photo_table():
    """Crops grouped by the photo they were cut from, averaged per run, then over seeds; differences to baseline."""
    from daa_mini_report import by_photo_md, summarize

    photos = ["a", "a", "b"]
    inputs = {"target": {"psnr": 20.0, "ssim": 0.5, "psnr_each": [20.0, 22.0, 18.0]},
              "source": {"psnr": 19.0, "ssim": 0.4}}

    def res(v, seed, each):
        return {"variant": v, "seed": seed, "target": {"psnr": sum(each) / 3, "ssim": 0.6, "psnr_each": each},
                "source": {"psnr": 25.0, "ssim": 0.7}}

    rs = [res("baseline", 0, [25.0, 27.0, 20.0]), res("baseline", 1, [25.0, 25.0, 22.0]),
          res("oracle", 0, [30.0, 30.0, 21.0])]
    t = summarize("noise", "t", inputs, rs, ["baseline", "oracle"], "val", photos=photos)["by_photo"]
    assert t["input"] == {"a": 21.0, "b": 18.0} and t["crops"] == {"a": 2.0, "b": 1.0}
    assert t["baseline"] == {"a": 25.5, "b": 21.0} and t["oracle"] == {"a": 30.0, "b": 21.0}
    md = by_photo_md(t)
    assert "| photo | crops | input | baseline | oracle | oracle − baseline |" in md
    assert "| a | 2 | 21.00 | 25.50 | 30.00 | +4.50 |" in md and "| b | 1 | 18.00 | 21.00 | 21.00 | +0.00 |" in md
    assert "by_photo" not in summarize("noise", "t", inputs, rs, ["baseline"], "val")
    t2 = summarize("noise", "t", inputs, rs, ["baseline", "oracle"], "val", photos=photos,
                   roundtrip=[40.0, 30.0, 50.0])["by_photo"]
    assert t2["noise-free round trip"] == {"a": 35.0, "b": 50.0}
    assert "| a | 2 | 21.00 | 35.00 | 25.50 | 30.00 | +4.50 |" in by_photo_md(t2)
    with pytest.raises(ValueError, match="split changed"):
        summarize("noise", "t", inputs, rs, ["baseline"], "val", photos=["a", "b"])


def test_seed_diagnostics_table():
    from daa_mini_report import diagnose_seeds_md

    probe = {"cos_real": 0.02, "cos_syn": 0.1, "rms_ratio": 1.0, "cos_oracle": 0.5, "cos_source": 0.0,
             "cos_source_oracle": -0.3, "delta_cos_total": 0.25, "norm_ratio": 0.4}
    md = diagnose_seeds_md([{"run": "noise/daa", "seed": 0, "all": probe, "gain": 0.5, "source_change": -0.12},
                            {"run": "noise/daa", "seed": 1, "all": {**probe, "cos_oracle": -0.2}}])
    lines = md.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | seed | vs baseline (target) |")
    assert lines[2] == ("| noise/daa | 0 | +0.50 | -0.12 | +0.500 | -0.300 | +0.2500 | 0.400 | +0.020 | – | – "
                        "| – | – | – | – |")
    assert lines[3].startswith("| noise/daa | 1 | – | – | -0.200 |")
    cond = {"loss": 0.7, "clean − restored": [0.32, 0.11], "blur(restored) − restored": [-0.26, 0.04],
            "blur(clean) − clean": [-0.53, 0.12], "input − restored": [22.4, 3.0],
            "synthetic: clean − restored": [0.35, 0.08]}
    md = diagnose_seeds_md([{"run": "noise/daa", "seed": 0, "all": {**probe, "cos_smooth": 0.31,
                                                                    "cos_truth_smooth": 0.12}, "conditions": cond}])
    assert md.splitlines()[2].endswith("| +0.020 | +0.310 | +0.120 | +0.32 ± 0.11 | -0.26 ± 0.04 | -0.53 ± 0.12 "
                                       "| +22.40 ± 3.00 |")
    assert all(len(r.split("|")) == len(md.splitlines()[0].split("|")) for r in md.splitlines())


def test_camera_reference_study_scores_the_cam_splits():
    st = daa_mini.Study("s", "noise", "val", [0], [daa_mini.Arm("oracle", "oracle")], reference="camera")
    assert st.eval_split == "val_cam" and daa_mini.Study("s", "noise", "test", [0], []).eval_split == "test"
    paths = daa_mini.paths_only("noise", Path("/d"), "noise")
    assert daa_mini.split_paths(paths, "val_cam")["oracle"] == Path("/d/noise/oracle_cam")
    assert daa_mini.split_paths(paths, "val")["oracle"] == Path("/d/noise/oracle")
    assert paths["source_val_cam"] == paths["source_val"]  # the source pairs do not change
    assert daa_mini.result_path(Path("o"), "noise", "b", 0, "test_cam").name == "result_test_cam.json"


def test_exploration_tasks_run_only_when_named():
    a = daa_mini.parse_args([])
    default = [st.task for st in daa_mini.cli_studies(a, None)]
    assert "camnoise" in default and "camdim" not in default and "camdark" not in default
    named = daa_mini.cli_studies(daa_mini.parse_args(["--tasks", "camdark"]), None)
    assert [st.task for st in named] == ["camdark"]
    st = daa_mini.Study("s", "camdark", "val", [0], [daa_mini.Arm("oracle", "oracle")], reference="camera")
    daa_mini.check_study(st)  # a camera-noise task: the camera reference is allowed


def test_report_of_some_studies_keeps_the_others(tmp_path):
    """`--studies X --report-dir D` rewrites X's table in D and keeps every other study's, in plan order; a whole
    plan's report replaces D's tables (studies dropped from the plan go)."""
    from daa_mini_report import report, summarize

    inputs = {k: {"psnr": 20.0, "ssim": 0.5} for k in ("target", "source")}

    def study(name, daa_psnr):
        rs = [{"variant": v, "seed": 0, "target": {"psnr": p, "ssim": 0.6}, "source": {"psnr": 24.0, "ssim": 0.7}}
              for v, p in (("baseline", 25.0), ("daa", daa_psnr))]
        return summarize("noise", f"title {name}", inputs, rs, ["baseline", "daa"], "val", study=name)

    rd = tmp_path / "docs"
    report(tmp_path / "o1", [study("a", 25.1), study("b", 25.2), study("old", 25.3)], rd)
    report(tmp_path / "o2", [study("c", 25.4), study("b", 26.5)], rd, merge_order=["a", "b", "c"])
    md = (rd / "tables.md").read_text()
    heads = [line for line in md.splitlines() if line.startswith("### ")]
    assert [h.split("`")[1] for h in heads] == ["a", "b", "c", "old"]
    assert "| daa | 26.50 | +1.50 |" in md and "| daa | 25.20 |" not in md  # b rescored, a kept
    assert "| daa | 25.10 | +0.10 |" in md
    assert [s["study"] for s in json.loads((rd / "summary.json").read_text())] == ["a", "b", "c", "old"]
    assert "`a`" not in (tmp_path / "o2" / "summary.md").read_text()  # the run folder's report is this run's only
    report(tmp_path / "o3", [study("b", 25.0)], rd)  # no merge: the whole plan's report
    assert [s["study"] for s in json.loads((rd / "summary.json").read_text())] == ["b"]


def test_diagnostics_of_some_studies_keep_the_others(tmp_path):
    """The same for diagnostics.md: a partial report merges by study; a diagnostics.md without its diagnostics.json
    (written before the merge existed) is left as it is rather than cut down to the studies given."""
    from daa_mini_report import write_sections

    rd = tmp_path / "docs"
    assert write_sections(rd, "diagnostics", {"a": "A1", "b": "B1"}, None)
    assert write_sections(rd, "diagnostics", {"c": "C1", "a": "A2"}, ["a", "b", "c"])
    assert (rd / "diagnostics.md").read_text() == "A2\nB1\nC1"
    assert write_sections(rd, "diagnostics", {"b": "B3"}, None)  # the whole plan: only what it diagnosed
    assert (rd / "diagnostics.md").read_text() == "B3"
    old = tmp_path / "old"
    old.mkdir()
    (old / "diagnostics.md").write_text("written by an earlier version")
    assert not write_sections(old, "diagnostics", {"a": "A"}, ["a", "b"])
    assert (old / "diagnostics.md").read_text() == "written by an earlier version"
