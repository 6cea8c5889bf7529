"""How the noise loss's pull changes over training: one DAA-mini run retrained with frequent checkpoints, each read
by daa.diagnose (gradient alignment and which real-slot image ε_θ rewards).

`daa.diagnose` on a finished run reads its last checkpoint only. This retrains one run of the plan — same config,
data and seed; only the checkpoint interval and how many are kept differ, which do not touch the optimisation
(daa.config.RESUMABLE_FIELDS) — into its own folder, checks that its final weights are byte-identical to the plan's
run where that exists, and diagnoses every checkpoint on the study's validation pairs:

    python launch/studies/daa_mini_trajectory.py --study camdark-r4-val --arm daa-a3-ema-dlr1e-4 --seed 0 \\
        --every 6000 --md docs/results/trajectory.md

Resumable: a finished run and cached diagnoses (diagnose_<tag>.json in the run folder) are reused. A measurement
for the report; nothing in the study's protocol is chosen from it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import daa_mini  # noqa: E402

COLUMNS = ("clean − restored", "blur(restored) − restored", "blur(clean) − clean", "input − restored",
           "synthetic: clean − restored")


def _sha(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def find_arm(plan: Path, study: str, arm: str) -> tuple[daa_mini.Study, daa_mini.Arm]:
    studies = {st.name: st for st in daa_mini.load_plan(plan)}
    if study not in studies:
        raise ValueError(f"--study {study}: not in {plan}")
    st = studies[study]
    a = next((x for x in st.arms if x.name == arm), None)
    if a is None or "objective.mode=baseline" in daa_mini.VARIANTS[a.variant]:
        raise ValueError(f"--arm {arm}: not a DAA arm of study {study} (arms: {', '.join(x.name for x in st.arms)})")
    return st, a


def trajectory_md(title: str, rows: list[dict], same: bool | None) -> str:
    head = ("| images seen | α | cos θ: noise·oracle | cos(−∇, y_r−ŷ_r) | cos(−∇, blur−ŷ_r) | "
            + " | ".join(f"L: {c} (%)" for c in COLUMNS) + " |")
    lines = [f"#### {title}", "",
             {True: "Final weights byte-identical to the plan's run.",
              False: "Final weights differ from the plan's run (another machine or library version).",
              None: "The plan's run is not here to compare with."}[same], "", head,
             "|" + "---|" * (5 + len(COLUMNS))]
    for r in rows:
        p, c = r["rows"]["all"], r["conditions"]["all"]
        lines.append(f"| {r['images_seen']} | {r['alpha']:.3f} | {p['cos_oracle']:+.3f} | {p['cos_real']:+.3f} | "
                     f"{p['cos_smooth']:+.3f} | " + " | ".join(f"{c[k][0]:+.2f} ± {c[k][1]:.2f}" for k in COLUMNS)
                     + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default="launch/studies/plans/daa_mini.yaml")
    p.add_argument("--study", required=True, help="a study of the plan (its task, split, seeds and overrides)")
    p.add_argument("--arm", required=True, help="one of its DAA arms")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, required=True, help="checkpoint interval in images")
    p.add_argument("--data", default=".data", help="where `make reproduce` wrote the DAA-mini data")
    p.add_argument("--runs", default="runs/daa_mini", help="the plan's runs (for the byte-identity check)")
    p.add_argument("--out", default="runs/daa_mini_trajectory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--md", default=None, help="write (or with --append, add) the table here")
    p.add_argument("--append", action="store_true")
    a = p.parse_args(argv)
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    try:
        if a.every < 1:
            raise ValueError("--every must be >= 1 image")
        st, arm = find_arm(resolve(a.plan), a.study, a.arm)
        paths = daa_mini.split_paths(daa_mini.paths_only(st.task, resolve(a.data) / "daa_mini2",
                                                         daa_mini.SOURCE_TASK), st.eval_split)
        pairs = paths["val" + st.eval_split[len(st.split):]]
        if not (paths["shards"] / "manifest.json").is_file() or not (pairs / "manifest.json").is_file():
            raise FileNotFoundError(f"no DAA-mini data for task {st.task} under {a.data}: run `make reproduce` "
                                    "(or launch/studies/daa_mini.py) first")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run = resolve(a.out) / st.task / arm.name / f"s{a.seed}"
    sets = daa_mini.run_overrides(st.task, arm, a.seed, paths, run, list(st.sets))
    from daa.config import load_config

    n_ckpt = -(-load_config("daa_mini", sets).run.total_images // a.every)
    sets += [f"run.ckpt_every_images={a.every}", f"run.keep_checkpoints={n_ckpt + 1}"]
    daa_mini.log(f"training {run} with a checkpoint every {a.every} images ({n_ckpt})")
    daa_mini.train_run(run, sets, a.threads)
    mine = _sha(run / "export" / "restorer_ema.safetensors")
    theirs = _sha(resolve(a.runs) / st.task / arm.name / f"s{a.seed}" / "export" / "restorer_ema.safetensors")
    same = None if theirs is None else mine == theirs

    from daa.training.checkpoint import CheckpointDir

    rows = []
    for tag in CheckpointDir(run).complete_tags():
        js = run / f"diagnose_{tag}.json"
        if not js.is_file():
            subprocess.run([sys.executable, "-m", "daa.diagnose", str(run), "--pairs", str(pairs), "--checkpoint", tag,
                            "--threads", str(a.threads), "--json", str(js)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        rows.append(json.loads(js.read_text()))
    rows.sort(key=lambda r: r["images_seen"])
    md = trajectory_md(f"`{st.task}/{arm.name}` (seed {a.seed}, study `{st.name}`), every {a.every} images, "
                       f"{Path(pairs).name} pairs", rows, same)
    print(md)
    if a.md:
        out = resolve(a.md)
        out.write_text((out.read_text() + "\n" if a.append and out.is_file() else "") + md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
