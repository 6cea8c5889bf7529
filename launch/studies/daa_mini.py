"""DAA-mini: does adaptation through the diffusion loss beat synthetic-only training, at CPU scale? (`make reproduce`)

Per task it builds the data once (cached under --data; daa_mini_data.py beside this file), trains every (arm, seed) with
the same restorer-update budget through this project's own trainer (launch/train.py, config daa/configs/daa_mini.yaml),
scores the EMA restorer on the target-domain split and the source-domain split of the chosen `--split` (val or
test), and writes tables, bar plots and verdicts (launch/studies/daa_mini_report.py).

Tasks (design: shared/notes/data.md §3 and docs/RESULTS.md):
- camnoise / noise: denoising with realistic synthetic camera noise (data_shards.degrade target profiles `sidd` —
  calibrated on real sRGB noise, lossless — and `default` — camera JPEG q60-90); rain: multi-layer screen-blended
  rain; blur: camera shake in linear light. Pool S → source pairs, pool U → unpaired target inputs (the oracle: their
  pairs), pool V → the validation split, pool E → the test split.
- polyu: denoising with REAL camera noise: unpaired real = PolyU noisy images of half of the scenes, validation and
  test = the pairs of two disjoint quarters of the scenes. Needs --polyu DIR.

Arms (rows): a variant — baseline (source pairs only), daa, no-tricks (no channel shuffling, no residual-swap
negatives), cs-only, detach-neg (negatives do not train R), daa_ref, oracle (the same restorer trained on target
pairs) — plus optional config overrides. `--plan FILE` runs a list of studies (task × split × seeds × arms; `make
reproduce` runs launch/studies/plans/daa_mini.yaml); without it, one study per task from --tasks/--variants/--set.

Protocol (docs/RESULTS.md): configurations are chosen on the validation split; the test split is scored once per final
configuration. A run trained for one split is reused for the other (only its evaluation is added).

Every run caches its checkpoint and results (OUT/<task>/<arm>/s<seed>/result.json for test, result_val.json for val,
each with the commit, the config digest and the digests of its training and evaluation data): a rerun trains only
what is missing, continues an interrupted run from its checkpoint, and refuses a cached result of another config or
data. `--quick` is a CI smoke test (one small task, two arms, a few steps).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import daa_mini_postfilter as postfilter  # noqa: E402
import daa_mini_scoring as scoring  # noqa: E402
from daa_mini_data import Task, digest, log, paths_only, polyu_split, prepare_data, result_path, sh  # noqa: E402,E501
from daa_mini_report import diagnose_seeds_md, report, summarize, table_md, verdict, write_sections  # noqa: E402,E501

__all__ = ["polyu_split", "table_md", "verdict"]  # re-exported: part of this study's interface (and its tests)

VARIANTS: dict[str, list[str]] = {
    "baseline": ["objective.mode=baseline"],
    "daa": ["objective.mode=daa"],
    "no-tricks": ["objective.mode=daa", "objective.channel_shuffle=false", "objective.residual_swap=false"],
    "cs-only": ["objective.mode=daa", "objective.residual_swap=false"],
    "detach-neg": ["objective.mode=daa", "objective.detach_negatives=true"],
    "daa_ref": ["objective.mode=daa_ref"],
    "oracle": ["objective.mode=baseline"],  # + the oracle shards
}
ALL_VARIANTS = list(VARIANTS)
CONTROL_VARIANTS: dict[str, list[str]] = {
    "placebo": ["objective.mode=daa"],  # + the placebo shards: a real stream of source-degraded pool-U crops
    "postfilter": [],  # no training: the outputs of the run named by `of`, smoothed (daa_mini_postfilter.py)
}
"""Controls, named in a plan only (no task's default plan runs them)."""
VARIANTS.update(CONTROL_VARIANTS)
VARIANT_SHARDS = {"oracle": "oracle", "placebo": "placebo"}
"""The training shards of a variant other than the task's own."""
MAIN_VARIANTS = ["baseline", "daa", "oracle"]

CAMERA_TASKS = ("noise", "camnoise", "camdim", "camdark")
"""Synthetic camera-noise tasks: they have the camera's own rendering as a reference (`reference: camera`)."""
SOURCE_TASK = "noise"
"""The corpus denoising task whose AWGN source splits the polyu task borrows."""
TASKS = {
    "camnoise": Task("denoise", "Denoising, camera noise calibrated on real sRGB noise (lossless)",
                     tuple(MAIN_VARIANTS), profile="sidd"),
    "camdim": Task("denoise", "Denoising, calibrated camera noise in dim light (lossless)", tuple(MAIN_VARIANTS),
                   profile="sidd-dim", in_default=False),
    "camdark": Task("denoise", "Denoising, calibrated camera noise in the dark (lossless)", tuple(MAIN_VARIANTS),
                    profile="sidd-dark", in_default=False),
    "noise": Task("denoise", "Denoising, camera noise + JPEG", tuple(MAIN_VARIANTS)),
    "polyu": Task("denoise", "Denoising, real camera noise (PolyU)", tuple(MAIN_VARIANTS)),
    "rain": Task("derain", "Deraining, realistic rain target", tuple(ALL_VARIANTS), y_metric=True),
    "blur": Task("deblur", "Deblurring, camera-shake target", tuple(MAIN_VARIANTS)),
}


@dataclass(frozen=True)
class Arm:
    """One row of a study: a variant plus config overrides. Its name is the row label and the run folder, so one
    name means one config within an --out (checked through the config digest)."""

    name: str
    variant: str
    sets: tuple[str, ...] = ()
    label: str = ""
    """The row's name in the study's table (default: the name). The final studies label their chosen arm `daa`,
    which is how the verdict finds it (e.g. the run `daa-a3` is the row `daa`)."""
    of: Arm | None = None
    """postfilter: the arm (of the same study) whose runs' outputs it smooths, seed by seed."""
    choose_on: str = ""
    """postfilter: the data split (e.g. valpool_cam) whose target pairs choose the filter's σ."""

    @property
    def row(self) -> str:
        return self.label or self.name


SPLITS = ("val", "test", "valpool", "fresh", "fresh2", "fresh3", "testpool")
"""Scored splits: val (pool V), test (pool E); from round 5 (docs/results/ledger.md, Amendment 5, camera reference only)
valpool (pools V + E: validation) and fresh (pool F: the test split), from round 6 (Amendment 6) fresh2 (pool G),
from round 7 (Amendment 7) fresh3 (pool H) and testpool (pools E, F, G and H merged); a verdict is read on test,
fresh, fresh2, fresh3 and testpool only."""
CAMERA_ONLY_SPLITS = ("valpool", "fresh", "fresh2", "fresh3", "testpool")
"""Splits written for the camera reference only (valpool_cam, fresh_cam, fresh2_cam, fresh3_cam, testpool_cam)."""


@dataclass
class Study:
    name: str
    task: str
    split: str
    seeds: list[int]
    arms: list[Arm]
    title: str = ""
    sets: list[str] = field(default_factory=list)  # overrides for every arm (e.g. the restorer of a task)
    diagnose: list[str] = field(default_factory=list)  # arms whose runs (every seed) get daa.diagnose
    by_photo: bool = False  # add the per-photo table of the target split
    reference: str = "photo"
    """The target pairs' clean image (data_shards.degrade.REFERENCES): `camera` scores on the `*_cam` splits and
    trains the oracle on the `oracle_cam` pairs (camera-noise tasks)."""

    @property
    def eval_split(self) -> str:
        """The data split the study scores: val / test, or val_cam / test_cam / valpool_cam / fresh_cam /
        fresh2_cam / fresh3_cam / testpool_cam."""
        return self.split + ("_cam" if self.reference == "camera" else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------------------
# one (task, arm, seed) run: train (resumable) → evaluate → result.json
# ----------------------------------------------------------------------------------------------------------------------
def run_overrides(task: str, arm: Arm, seed: int, paths: dict[str, Path], run_dir: Path, extra: list[str]):
    t = TASKS[task]
    shards = paths[VARIANT_SHARDS.get(arm.variant, "shards")]
    return [*VARIANTS[arm.variant], f"data.task={t.task}", f"data.shards={shards}", f"run.run_dir={run_dir}",
            f"run.seed={seed}", *extra, *arm.sets]


def config_digest(sets: list[str]) -> str:
    """Identity of a run's resolved training config (daa/configs/daa_mini.yaml + overrides), without the paths
    (run folder, shard folder: the training data's identity is its own digest) and without the fields that do not
    change the optimisation (daa.config.RESUMABLE_FIELDS: intervals, kernels, layout and compile levers), so that a
    checkout elsewhere, or a newer one, finds its cached results. `run.total_images` stays: it is the budget."""
    import hashlib

    from daa.config import identity_dict, load_config

    d = identity_dict(load_config("daa_mini", sets), keep=("run.total_images",))
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_run(run_dir: Path, sets: list[str], threads: int) -> float:
    """Train (or resume) one run; returns its training seconds (recorded in run_dir/done)."""
    done = run_dir / "done"
    if (run_dir / "export" / "restorer_ema.safetensors").is_file() and done.is_file():
        return float(done.read_text().strip() or 0)
    with _TRAIN_SLOTS[0]:
        return _train(run_dir, sets, threads, done)


def _train(run_dir: Path, sets: list[str], threads: int, done: Path) -> float:
    t0 = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS=str(threads), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
               LOCAL_RANK="0", WORLD_SIZE="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "launch/train.py", "--config", "daa_mini", *[a for s in sets for a in ("--set", s)]]
    with open(run_dir / "train.log", "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = (run_dir / "train.log").read_text().strip().splitlines()[-1:]
        raise RuntimeError(f"training {run_dir} failed (exit {rc}): {tail[0] if tail else ''} — see train.log")
    secs = round(time.time() - t0, 1)
    done.write_text(f"{secs}\n")
    return secs


def evaluate_run(run_dir: Path, paths: dict[str, Path], task: str, split: str) -> dict:
    return scoring.evaluate_run(run_dir, paths, split, TASKS[task].y_metric)


def input_result(paths: dict[str, Path], task: str, split: str = "test") -> dict:
    return scoring.input_result(paths, split, TASKS[task].y_metric)


_RUN_LOCKS: dict[str, threading.Lock] = {}
_RUN_LOCKS_GUARD = threading.Lock()
_TRAIN_SLOTS = [threading.BoundedSemaphore(1)]
"""How many runs train at once (--jobs). Every scored job has a thread of its own, so a job that waits for a run
another job trains (a post-filter for its baseline, a second split for the first) holds no training slot."""


def one_run(out: Path, task: str, arm: Arm, seed: int, paths: dict[str, Path], extra: list[str],
            threads: int, split: str = "test") -> dict:
    """Train (or reuse) one run and score it on `split` ('val' or 'test'). A cached result counts only while its
    training config and training data are unchanged; if only the evaluation split changed, it is re-scored."""
    run_dir = out / task / arm.name / f"s{seed}"
    res_path = result_path(out, task, arm.name, seed, split)
    if arm.variant == "postfilter":
        return postfilter.run(one_run, out, task, arm, seed, paths, extra, threads, split, TASKS[task].y_metric,
                              git_commit())
    sets = run_overrides(task, arm, seed, paths, run_dir, extra)
    cfg_digest = config_digest(sets)
    data_digest = digest(paths[VARIANT_SHARDS.get(arm.variant, "shards")])
    eval_digest = digest(paths[split], paths[f"source_{split}"])
    old = [json.loads(p.read_text()) for p in run_dir.glob("result*.json")]
    for r in old:
        if r.get("config_digest") != cfg_digest or r.get("data_digest", data_digest) != data_digest:
            raise RuntimeError(f"{run_dir} holds a result of another training config or training data (the YAML, "
                               "--set, the plan or the shards changed); use another --out, or move that folder away "
                               "to retrain it")
    res = json.loads(res_path.read_text()) if res_path.is_file() else None
    if res is not None and res.get("eval_digest") == eval_digest:
        return {**res, "variant": arm.name}  # the arm's name in this plan (a run folder may have been renamed)
    with _RUN_LOCKS_GUARD:
        lock = _RUN_LOCKS.setdefault(str(run_dir), threading.Lock())
    with lock:  # two studies scoring one run on different splits train it once
        train_s = train_run(run_dir, sets, threads)
    res = {"task": task, "variant": arm.name, "base_variant": arm.variant, "seed": seed, "split": split,
           "overrides": sets, "config_digest": cfg_digest, "data_digest": data_digest, "eval_digest": eval_digest,
           "commit": git_commit(), **evaluate_run(run_dir, paths, task, split), "train_s": train_s}
    res_path.write_text(json.dumps(res, indent=1))
    log(f"{task}/{arm.name}/s{seed} [{split}]: target {res['target']['psnr']:.2f} dB, source "
        f"{res['source']['psnr']:.2f} dB ({res['train_s']:.0f} s)")
    return res


def git_commit() -> str | None:
    """The commit the runs are made from (with '+dirty' when tracked files have changes), recorded in every result."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# ----------------------------------------------------------------------------------------------------------------------
# studies: from a plan file, or one per task from the command line
# ----------------------------------------------------------------------------------------------------------------------
def load_plan(path: Path) -> list[Study]:
    """A YAML list of studies: {name, task, split, seeds, title?, set?, arms: [{name, variant, set?}]}."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"error: --plan {path}: {str(e).splitlines()[0]}") from None
    studies = []
    for k, d in enumerate((doc or {}).get("studies", [])):
        try:
            arms = [Arm(a["name"], a.get("variant", a["name"]), tuple(a.get("set", [])), a.get("label", ""))
                    for a in d["arms"]]
            arms = [postfilter.resolve_arm(arm, a, arms, str(d.get("reference", "photo")), SPLITS)
                    for arm, a in zip(arms, d["arms"])]
            st = Study(d["name"], d["task"], d.get("split", "test"), [int(x) for x in d.get("seeds", [0, 1, 2])],
                       arms, d.get("title", ""), list(d.get("set", [])), list(d.get("diagnose", [])),
                       bool(d.get("by_photo", False)), str(d.get("reference", "photo")))
        except (KeyError, TypeError, ValueError) as e:
            raise SystemExit(f"error: --plan {path}: study {k} is malformed ({type(e).__name__}: {e})") from None
        check_study(st)
        studies.append(st)
    if not studies:
        raise SystemExit(f"error: --plan {path}: no studies")
    return studies


def check_study(st: Study) -> None:
    if st.task not in TASKS:
        raise SystemExit(f"error: unknown task {st.task!r}; choose from {', '.join(TASKS)}")
    if st.split not in SPLITS:
        raise SystemExit(f"error: study {st.name}: split must be one of {', '.join(SPLITS)}, got {st.split!r}")
    if st.split in CAMERA_ONLY_SPLITS and st.reference != "camera":
        raise SystemExit(f"error: study {st.name}: split {st.split} exists for the camera reference only "
                         "(reference: camera)")
    if st.reference not in ("photo", "camera") or (st.reference == "camera" and st.task not in CAMERA_TASKS):
        raise SystemExit(f"error: study {st.name}: reference must be photo, or camera on a camera-noise task "
                         f"({', '.join(CAMERA_TASKS)}); got {st.reference!r} on {st.task}")
    for a in st.arms:
        if a.variant not in VARIANTS:
            raise SystemExit(f"error: unknown variant {a.variant!r}; choose from {', '.join(VARIANTS)}")
        if a.variant == "placebo" and st.task == "polyu":
            raise SystemExit(f"error: study {st.name}: the placebo needs a corpus task (its real stream is pool U "
                             "with the source degradation)")
    names = {a.name: a for a in st.arms}
    for d in st.diagnose:
        if d not in names or names[d].variant in ("baseline", "oracle", "postfilter"):
            raise SystemExit(f"error: study {st.name}: diagnose names {d!r}, which is not one of its DAA arms")


def cli_studies(a, polyu: Path | None) -> list[Study]:
    tasks = a.tasks.split(",") if a.tasks else [t for t in TASKS if (t != "polyu" or polyu is not None)
                                                and TASKS[t].in_default]
    variants = a.variants.split(",") if a.variants else None
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds must be a comma list of integers, got {a.seeds!r}") from None
    out = []
    for t in tasks:
        st = Study(t, t, a.split, seeds, [Arm(v, v) for v in (variants or (TASKS[t].variants if t in TASKS else ()))])
        check_study(st)
        out.append(st)
    return out


# ----------------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default=None, help="a YAML list of studies (see launch/studies/plans/daa_mini.yaml); "
                   "replaces --tasks/--variants/--seeds/--split")
    p.add_argument("--studies", default=None, help="with --plan: run only these studies (comma list of names), e.g. "
                   "the validation studies first and the test studies once the choices are made")
    p.add_argument("--arms", default=None, help="with --plan: run only these arms (comma list of run names) of the "
                   "chosen studies, e.g. the cheap arms first on a loaded box; the others stay as they are")
    p.add_argument("--tasks", default=None, help="comma list of " + ", ".join(TASKS) + " (default: all available)")
    p.add_argument("--variants", default=None, help="comma list (default: each task's plan); any of "
                   + ", ".join(ALL_VARIANTS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="score the runs on the validation split (choosing a config) or the test split (once per "
                        "final config); a run trained for one is reused for the other")
    p.add_argument("--polyu", default=str(ROOT.parent / "shared" / "data" / "real_noise_polyu"),
                   help="PolyU real-noise pairs (*_real.JPG / *_mean.JPG); task polyu is skipped when missing")
    p.add_argument("--data", default=".data", help="photo corpus at DATA/photos, DAA-mini data at DATA/daa_mini2")
    p.add_argument("--out", default="runs/daa_mini")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (one process each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra trainer overrides for every run (changes the runs' identity: use a new --out)")
    p.add_argument("--report-dir", default=None,
                   help="also write tables.md, summary.json, diagnostics.md and plots here (when only part of the "
                        "plan runs, --studies or no PolyU pairs, the other studies' tables already there are kept)")
    p.add_argument("--report-only", action="store_true", help="summarize the finished runs, train nothing")
    p.add_argument("--quick", action="store_true", help="CI smoke test: task noise, baseline + daa, 1 seed, tiny")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    resolve = lambda s: Path(s) if Path(s).is_absolute() else ROOT / s  # noqa: E731
    data, out = resolve(a.data), resolve(a.out)
    polyu = Path(a.polyu) if a.polyu and Path(a.polyu).is_dir() else None
    if a.quick:
        a.tasks, a.variants, a.seeds = a.tasks or "noise", a.variants or "baseline,daa", "0"
        if a.out == "runs/daa_mini":
            out = ROOT / "runs" / "daa_mini_quick"
        a.extra = ["run.total_images=64", "objective.alpha_ramp_images=64", "run.ckpt_every_images=32",
                   "run.log_every_images=16", "run.eval_every_images=64", "data.patch_size=32", *a.extra]
    studies = load_plan(resolve(a.plan)) if a.plan else cli_studies(a, polyu)
    plan_order = [st.name for st in studies]
    if a.studies:
        want = a.studies.split(",")
        unknown = [w for w in want if w not in {st.name for st in studies}]
        if unknown:
            raise SystemExit(f"error: --studies: {', '.join(unknown)} not in the plan")
        studies = [st for st in studies if st.name in want]
    elif a.plan and polyu is None and any(st.task == "polyu" for st in studies):
        # the PolyU pairs are not part of the product (a user's machine may not have them): a whole plan runs
        # without its PolyU studies; naming one in --studies still needs the pairs (the error below)
        skipped = [st.name for st in studies if st.task == "polyu"]
        log(f"skipping {', '.join(skipped)}: no PolyU pairs at --polyu {a.polyu}")
        studies = [st for st in studies if st.task != "polyu"]
    if a.arms:
        want = a.arms.split(",")
        unknown = [w for w in want if w not in {arm.name for st in studies for arm in st.arms}]
        if unknown:
            raise SystemExit(f"error: --arms: {', '.join(unknown)} not in the chosen studies")
        studies = [dataclasses.replace(st, arms=[arm for arm in st.arms if arm.name in want]) for st in studies]
        studies = [st for st in studies if st.arms]
    tasks = list(dict.fromkeys(st.task for st in studies))
    if "polyu" in tasks and polyu is None:
        raise SystemExit(f"error: task polyu needs the PolyU pairs: --polyu {a.polyu} is not a folder")
    # daa_mini2: data written for the corpus with a validation pool V (older data, without it, lives elsewhere)
    data_root = data / ("daa_mini_quick2" if a.quick else "daa_mini2")
    # --quick: a small pool-P-only corpus of its own (no apt, seconds to build); the study uses the full corpus
    photos = data_root / "photos" if a.quick else data / "photos"
    t0 = time.time()
    if not a.report_only:
        sh([sys.executable, str(Path(__file__).resolve().parent / "photo_corpus.py"), "--out", photos,
            *(["--no-apt", "--max-side", "256"] if a.quick else [])])
    cam = {st.task for st in studies if st.reference == "camera"}
    variants = {t: {arm.variant for st in studies if st.task == t for arm in st.arms} for t in tasks}
    paths = {t: prepare_data(t, TASKS[t], data_root, photos, polyu, a.quick, SOURCE_TASK, camera_reference=t in cam,
                             oracle_shards="oracle" in variants[t], placebo_shards="placebo" in variants[t])
             if not a.report_only else paths_only(t, data_root, SOURCE_TASK) for t in tasks}
    # one job per (task, arm, seed, scored split); a run shared by several studies is trained once
    # seed by seed (stable within a seed): when a plan is cut short, every arm has the same seeds done
    jobs = dict.fromkeys(sorted(((st.task, arm, s, st.eval_split, tuple(st.sets)) for st in studies
                                 for arm in st.arms for s in st.seeds), key=lambda j: j[2]))
    results: dict[tuple, dict] = {}
    if not a.report_only:
        todo = len({(t, arm.name, s) for t, arm, s, _, _ in jobs
                    if not (out / t / arm.name / f"s{s}" / "done").is_file()})
        log(f"{len(studies)} studies, {len(jobs)} scored runs ({todo} to train), {a.jobs} at a time")
        failures = []
        _TRAIN_SLOTS[0] = threading.BoundedSemaphore(a.jobs)
        with ThreadPoolExecutor(max(len(jobs), 1)) as pool:
            futs = {pool.submit(one_run, out, t, arm, s, split_paths(paths[t], sp), [*a.extra, *sets], a.threads,
                                sp): (t, arm, s, sp) for t, arm, s, sp, sets in jobs}
            for f, key in futs.items():
                try:
                    results[key] = f.result()
                except Exception as e:  # noqa: BLE001 - report every failed run, keep the others
                    failures.append(f"{key[0]}/{key[1].name}/s{key[2]} [{key[3]}]: {e}")
        for msg in failures:
            log(f"FAILED {msg}")
    else:
        for t, arm, s, sp, _ in jobs:
            p = result_path(out, t, arm.name, s, sp)
            if p.is_file():  # keyed by the arm's name in this plan, as one_run does (a folder may have been renamed)
                results[(t, arm, s, sp)] = {**json.loads(p.read_text()), "variant": arm.name}
    summaries = []
    for st in studies:
        rs = [results[(st.task, arm, s, st.eval_split)] for arm in st.arms for s in st.seeds
              if (st.task, arm, s, st.eval_split) in results]
        t = TASKS[st.task]
        photos = scoring.split_photos(paths[st.task][st.eval_split]) if st.by_photo else None
        trip = scoring.roundtrip_each(paths[st.task], st.eval_split) if st.by_photo else None
        inputs = input_result(paths[st.task], st.task, st.eval_split)
        summaries.append(summarize(st.task, st.title or t.title, inputs, rs, [(arm.name, arm.row) for arm in st.arms],
                                   st.split, t.y_metric, st.name, photos, trip))
    # part of the plan (--studies, or the PolyU studies skipped) merges into the report dir: rescoring one study
    # must not drop every other study's table or diagnosis
    merge_order = plan_order if len(studies) < len(plan_order) else None
    report_dir = resolve(a.report_dir) if a.report_dir else None
    report(out, summaries, report_dir, merge_order=merge_order)
    diagnostics(out, studies, paths, results, report_dir, a.report_only, merge_order)
    log(f"DAA-mini done in {time.time() - t0:.0f} s (results in {out})")
    return 1 if not a.report_only and len(results) < len(jobs) else 0


def split_paths(paths: dict[str, Path], split: str) -> dict[str, Path]:
    """A task's paths as a run scored on `split` sees them: on a camera-reference split the oracle trains on the
    camera-reference pairs."""
    return {**paths, "oracle": paths["oracle_cam"]} if split.endswith("_cam") else paths


def diagnostics(out: Path, studies: list[Study], paths: dict, results: dict, report_dir: Path | None,
                report_only: bool, merge_order: list[str] | None = None) -> None:
    """daa.diagnose on every seed of the named arms (the study's validation pairs), cached in the run folder
    (diagnose.json, or diagnose_val_cam.json on the camera-reference pairs): the full table for the first seed,
    then one row per seed next to that seed's gain over the baseline."""
    from daa.condition_preference import table_md as pref_table
    from daa.diagnose import Probe
    from daa.diagnose import table_md as diag_table

    sections = {}
    for st in studies:
        md = []
        base = next((a for a in st.arms if a.row == "baseline"), None)
        for name in st.diagnose:
            seed_rows = []
            for seed in st.seeds:
                run = out / st.task / name / f"s{seed}"
                pairs = "val" + st.eval_split[len(st.split):]  # diagnosed on the validation pairs the study uses
                js = run / ("diagnose.json" if pairs == "val" else f"diagnose_{pairs}.json")
                cmd = [sys.executable, "-m", "daa.diagnose", str(run), "--pairs", str(paths[st.task][pairs]),
                       "--threads", "1", "--json"]
                if not js.is_file() and not report_only and (run / "done").is_file():
                    subprocess.run([*cmd, str(js)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                if not js.is_file():
                    continue
                d = json.loads(js.read_text())
                if "conditions" not in d and not report_only:
                    # a diagnose.json written before daa.condition_preference: add its table, keep the rows
                    tmp = js.with_suffix(".conditions.json")
                    subprocess.run([*cmd, str(tmp), "--only-conditions"], cwd=ROOT, check=True,
                                   stdout=subprocess.DEVNULL)
                    d["conditions"] = json.loads(tmp.read_text())["conditions"]
                    tmp.write_text(json.dumps(d, indent=1))
                    os.replace(tmp, js)  # atomic: an interrupted update leaves the cached diagnosis as it was
                if seed == min(st.seeds):
                    md += [f"#### `{st.task}/{name}` (seed {seed}, α={d['alpha']:.3f}, {pairs} pairs)", "",
                           diag_table({k: Probe(**v) for k, v in d["rows"].items()}), ""]
                    if "conditions" in d:
                        md += ["α·L_noise with R's real output replaced (% of its value as trained; mean ± s.e.; "
                               "daa/condition_preference.py):", "", pref_table(d["conditions"]), ""]
                row = {"run": f"{st.task}/{name}", "seed": seed, "all": d["rows"]["all"],
                       "conditions": d.get("conditions", {}).get("all")}
                arm = next((a for a in st.arms if a.name == name), None)
                r, b = (results.get((st.task, x, seed, st.eval_split)) if x else None for x in (arm, base))
                if r is not None and b is not None:
                    row["gain"] = r["target"]["psnr"] - b["target"]["psnr"]
                    row["source_change"] = r["source"]["psnr"] - b["source"]["psnr"]
                seed_rows.append(row)
            if len(seed_rows) > 1:
                md += [f"`{st.task}/{name}`, every seed ({st.split} split gains; study `{st.name}`):", "",
                       diagnose_seeds_md(seed_rows), ""]
        if md:
            sections[st.name] = "\n".join(md)
    if sections:
        text = "\n".join(sections.values())
        (out / "diagnostics.md").write_text(text)
        print("\n" + text, flush=True)
    if report_dir is not None and not write_sections(report_dir, "diagnostics", sections, merge_order):
        log(f"{report_dir}/diagnostics.md kept as it was: it has no diagnostics.json to merge into (the whole "
            "plan's report writes one)")


if __name__ == "__main__":
    sys.exit(main())
