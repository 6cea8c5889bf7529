"""Benchmark of one DAA training step (`make bench-step`; the ZeRO memory benchmark is zero_memory.py beside it).

    python launch/bench/step.py                      # CPU: demo sizes (~1 min on 2 cores)
    python launch/bench/step.py --quick              # CPU: tiny sizes (smoke test)
    python launch/bench/step.py --csv $OUT/step_gpu.csv            # CUDA: paper sizes, B=24 and B=8 (< 3 min)
    python launch/bench/step.py --gpu-quick --csv $OUT/step_gpu.csv  # CUDA: paper sizes, B=8 only (~1 min)

Joint-step throughput: images/s (B = micro-batch, i.e. B synthetic pairs + B real images) of one full
training step (forward, backward, Adam step over both networks) of `daa.objective.DAAObjective` (one restorer call
on [x_s; x_r], `kernels.build_conditions`, one diffusion call on the (2B,9,H,W) batch) against
`daa.official.official_step_loss` (two restorer calls, clone/mask swaps, two diffusion calls, fp32). Both run the
same networks (copies of one initialisation), the same batch and one fixed `StepDraws` from `obj.draw(...)`, and the
same `torch.optim.Adam`. Variants are timed interleaved (one step of each in turn, order alternating per round), so
load from other jobs hits every variant alike; the median step time gives images/s.

* CPU: fp32 for both; 'ours' is timed contiguous and channels_last and the faster is reported as ours.
* CUDA: official = fp32 as the official code (PyTorch defaults: cudnn.allow_tf32=True, so fp32 convs use TF32);
  ours in fp32 (batching effect alone) and in bf16 the way DeepSpeed bf16 runs it: bf16 weights and inputs, fp32
  master weights that Adam steps, copied back to bf16 (`+cl` = channels_last). `torch.backends.cudnn.benchmark=True`
  is a second phase run in a fresh process (cuDNN caches the algorithms it picked per shape, so benchmarked and
  non-benchmarked variants cannot share one process). Steps are bracketed by `torch.cuda.synchronize()`.

Rows are appended to a CSV (default docs/benchmarks/step.csv) with timestamp, git sha, device, torch and deepspeed
versions.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing
# Idle OpenMP threads sleep instead of spinning. On a shared CPU box, spinning threads of a 2-thread process whose
# sibling core is busy made steps 5-20x slower and noisy; the thread count is unchanged. Set before torch loads
# libgomp; export OMP_WAIT_POLICY=ACTIVE to measure the spinning default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from launch.bench.step_runners import (  # noqa: E402
    ALPHA,
    StepRunner,
    TrainerRunner,
    Variant,
    parse_variants,
)
from launch.harness import CsvLog, git_sha, quantile  # noqa: E402

_T0 = time.monotonic()  # --max-wall-s counts from here (after the torch import)

CSV_FIELDS = (
    "timestamp", "git_sha", "device", "threads", "torch", "deepspeed", "part",
    # part = step
    "phase", "impl", "variant", "dtype", "memory_format", "restorer", "restorer_params", "diffusion",
    "diffusion_params", "B", "H", "W", "steps", "ms_p50", "ms_p20", "ms_p80", "img_s", "x_vs_official", "status",
    "step_gib",
    # part = zero
    "zero_stage", "precision", "world", "rank", "psi", "params_bytes", "grads_bytes", "master_bytes", "adam_bytes",
    "model_state_bytes", "formula_bytes", "measured_over_formula", "other_bytes", "mid_backward_bytes",
    "persistent_bytes",
)
DEMO_RESTORER = ("unet", {"depth": 3, "wf": 16})
QUICK_RESTORER = ("unet", {"depth": 2, "wf": 8})
CPU_TARGET, GPU_TARGET, ZERO_TOLERANCE = 1.3, 2.5, 0.10




# ---------------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------------
def deepspeed_version() -> str:
    try:
        from importlib.metadata import version

        return version("deepspeed")
    except Exception:  # noqa: BLE001 - not installed or broken metadata
        return "none"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"


def bench_meta(device: torch.device) -> dict:
    """The columns every row of step.csv starts with."""
    return dict(timestamp=_dt.datetime.now().isoformat(timespec="seconds"), git_sha=git_sha(),
                device=device_name(device), threads=torch.get_num_threads() if device.type == "cpu" else "",
                torch=torch.__version__, deepspeed=deepspeed_version())


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def _parse_ints(s: str) -> list[int]:
    return [int(x) for x in str(s).split(",") if x.strip()]


# ---------------------------------------------------------------------------------------------------------------
# part 1: joint-step throughput
# ---------------------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _oom_types() -> tuple[type, ...]:
    t = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (t,) if t is not None else ()


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _memory_format(args, v) -> str:
    """The activation layout a variant runs in: its -cl flag, or for the trainer its config (`--trainer-set`)."""
    if v.impl == "trainer" and not v.channels_last:
        from daa.config import load_config

        return "channels_last" if load_config("denoise", list(args.trainer_sets)).run.channels_last else "contiguous"
    return "channels_last" if v.channels_last else "contiguous"


def _trainer_levers(args, v) -> str:
    """' [lever, …]' after a trainer variant's name when --trainer-set changed its config (rows stay tellable)."""
    return f" [{', '.join(args.trainer_sets)}]" if v.impl == "trainer" and args.trainer_sets else ""


def bench_group(args, device, variants, batch_size, phase, deadline, log) -> list[dict]:
    """Time `variants` interleaved at one batch size. Returns one result dict per variant."""
    from daa.models import build_diffusion_unet, build_restorer, count_parameters
    from daa.objective import DAAObjective, ObjectiveConfig

    torch.manual_seed(0)
    restorer = build_restorer(args.restorer, args.restorer_preset, **args.restorer_args_dict)
    denoiser = build_diffusion_unet(args.diffusion_preset)
    n_r, n_d = count_parameters(restorer), count_parameters(denoiser)
    h = w = args.size
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand((batch_size, 3, h, w), generator=g) for k in ("x_s", "y_s", "x_r")}
    drawer = DAAObjective(restorer, denoiser, ObjectiveConfig(mode="daa"))
    draws = drawer.draw(batch_size, (3, h, w), torch.device("cpu"), generator=g, noise_generator=g)
    base = dict(phase=phase, restorer=f"{args.restorer}{json.dumps(args.restorer_args_dict, separators=(',', ':'))}"
                if args.restorer_args_dict else args.restorer, restorer_params=n_r, diffusion=args.diffusion_preset,
                diffusion_params=n_d, B=batch_size, H=h, W=w)
    results = {v: dict(base, impl=v.impl, variant=v.name + _trainer_levers(args, v), dtype=v.dtype,
                       memory_format=_memory_format(args, v), steps=0, status="ok")
               for v in variants}
    times: dict[Variant, list[float]] = {v: [] for v in variants}
    runners: dict[Variant, StepRunner] = {}

    def fail(v, e):
        oom = isinstance(e, _oom_types()) if _oom_types() else False
        results[v]["status"] = "OOM" if oom else f"error: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        log(f"#   {v.name} B={batch_size} [{phase}]: {results[v]['status']}")
        if not oom:
            traceback.print_exc(file=sys.stderr)
        runners.pop(v, None)
        _free(device)

    tmp = tempfile.mkdtemp(prefix="daa-bench-step-")
    for v in variants:  # build and warm up each variant (Adam state, cuDNN algorithm choice, Triton compile)
        try:
            runners[v] = (TrainerRunner(v, args, batch, batch_size, f"{tmp}/{v.dtype}", device) if v.impl == "trainer"
                          else StepRunner(v, restorer, denoiser, batch, draws, device))
            for _ in range(args.warmup):
                runners[v].step()
            _sync(device)
        except Exception as e:  # noqa: BLE001 - one variant failing (OOM, op missing) must not end the run
            fail(v, e)
    for rnd in range(args.steps):
        order = list(runners) if rnd % 2 == 0 else list(runners)[::-1]
        if not order or (rnd >= 2 and time.monotonic() > deadline):
            break
        for v in order:
            try:
                _sync(device)
                if device.type == "cuda":
                    before = torch.cuda.memory_allocated(device)
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                runners[v].step()
                _sync(device)
                times[v].append(time.perf_counter() - t0)
                if device.type == "cuda":  # what the step itself adds: activations, grads, temporaries
                    extra = (torch.cuda.max_memory_allocated(device) - before) / 2**30
                    results[v]["step_gib"] = round(max(results[v].get("step_gib", 0.0), extra), 2)
            except Exception as e:  # noqa: BLE001
                fail(v, e)
    runners.clear()
    _free(device)
    shutil.rmtree(tmp, ignore_errors=True)

    off = next((v for v in variants if v.impl == "official"), None)
    off_ips = None
    if off is not None and times[off] and results[off]["status"] == "ok":
        off_ips = batch_size / statistics.median(times[off])
    for v in variants:
        ts = times[v]
        r = results[v]
        r["steps"] = len(ts)
        if ts and r["status"] == "ok":
            med = statistics.median(ts)
            r.update(ms_p50=round(med * 1e3, 2), ms_p20=round(quantile(ts, 0.2) * 1e3, 2),
                     ms_p80=round(quantile(ts, 0.8) * 1e3, 2), img_s=round(batch_size / med, 3))
            if off_ips:
                r["x_vs_official"] = round(batch_size / med / off_ips, 3)
        elif r["status"] == "ok":
            r["status"] = "no timed steps"
    return [results[v] for v in variants]


def run_phase(args, device, phase: str, budget_s: float, log, on_rows=None) -> list[dict]:
    """All batch sizes of one phase ('default' or 'cudnn.benchmark') in this process; `on_rows(rows)` after each."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = phase == "cudnn.benchmark"
    variants = parse_variants(args.variants)
    start = time.monotonic()
    rows = []
    sizes = _parse_ints(args.batch)
    for i, b in enumerate(sizes):
        left = budget_s - (time.monotonic() - start)
        deadline = time.monotonic() + left / (len(sizes) - i)  # a fair share of what is left
        rows += bench_group(args, device, variants, b, phase, deadline, log)
        if on_rows is not None:
            on_rows(rows)
    return rows


def run_phase_subprocess(args, phase: str, budget_s: float, hard_s: float | None, log) -> list[dict]:
    """Run one phase in a fresh process (cuDNN's per-process algorithm cache must start empty). The child writes its
    rows after each batch size, so a child killed at `hard_s` still returns the sizes it finished."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *args.argv, "--phase-worker", phase,
               "--phase-json", str(out), "--budget-s", str(max(budget_s, 1.0))]
        timeout = max(hard_s, 5.0) if hard_s is not None else budget_s + 300
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
            rc, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc = "killed at the --max-wall-s limit"
            text = "".join(x.decode() if isinstance(x, bytes) else (x or "") for x in (e.stdout, e.stderr))
        for line in text.splitlines():  # the child's per-variant notes (OOM, errors)
            if line.startswith("#   "):
                log(line)
        rows = json.loads(out.read_text()) if out.exists() else []
        if rc != 0:
            log(f"# phase {phase}: rc={rc}; {len(rows)} rows came back; last lines:")
            for line in text.strip().splitlines()[-15:]:
                log(f"#   {line}")
        return rows


def step_table(rows: list[dict], emit) -> None:
    emit(f"{'phase':<16} {'variant':<16} {'B':>3} {'HxW':>8} {'steps':>5} {'ms p50':>9} {'[p20 - p80]':>19} "
         f"{'img/s':>9} {'x official':>10}  status")
    for r in rows:
        if r.get("img_s"):
            emit(f"{r['phase']:<16} {r['variant']:<16} {r['B']:>3} {str(r['H']) + 'x' + str(r['W']):>8} "
                 f"{r['steps']:>5} {r['ms_p50']:>9.1f} {'[' + format(r['ms_p20'], '.1f') + ' - ':>11}"
                 f"{format(r['ms_p80'], '.1f') + ']':>8} {r['img_s']:>9.2f} "
                 f"{(format(r['x_vs_official'], '.2f') + 'x') if r.get('x_vs_official') else '-':>10}  {r['status']}"
                 + (f"  (step adds {r['step_gib']:.1f} GiB)" if r.get("step_gib") else ""))
        else:
            emit(f"{r['phase']:<16} {r['variant']:<16} {r['B']:>3} {str(r['H']) + 'x' + str(r['W']):>8} "
                 f"{r['steps']:>5} {'-':>9} {'':>19} {'-':>9} {'-':>10}  {r['status']}")


def step_verdict(rows: list[dict], device: torch.device, emit) -> None:
    """Per batch size: the trainer (what users run) against the faithful official step — on CUDA the official in the
    cudnn.benchmark phase (its configs turn benchmark on); plain MET / NOT MET for the issue's target (CUDA: the bf16
    trainer ≥ 2.5×). Also the trainer against the bare objective step ("ours"): what the trainer's own work costs."""
    target = GPU_TARGET if device.type == "cuda" else CPU_TARGET
    ok = [r for r in rows if r.get("img_s")]
    for b in sorted({r["B"] for r in rows}, reverse=True):
        at_b = [r for r in ok if r["B"] == b]
        off = {r["phase"]: r for r in at_b if r["impl"] == "official"}
        base = off.get("cudnn.benchmark") or off.get("default")
        trainers = [r for r in at_b if r["impl"] == "trainer"]
        if base is None or not trainers:
            emit(f"# B={b}: no complete official/trainer pair was measured -> target {target}x NOT CHECKED")
            continue
        pick = [r for r in trainers if r["dtype"] == "bf16"] if device.type == "cuda" else trainers
        best = max(pick or trainers, key=lambda r: r["img_s"])
        x = best["img_s"] / base["img_s"]
        emit(f"# B={b}: trainer {best['variant']} [{best['phase']}] {best['img_s']:.2f} img/s vs official fp32 "
             f"[{base['phase']}] {base['img_s']:.2f} img/s -> {x:.2f}x; target >= {target}x: "
             f"{'MET' if x >= target else 'NOT MET'}")
        for t in trainers:
            bare = [r for r in at_b if r["impl"] == "ours" and r["dtype"] == t["dtype"] and r["phase"] == t["phase"]
                    and r["memory_format"] == t["memory_format"]]  # same layout: the trainer's own work alone
            if bare:
                emit(f"#   [{t['phase']}] {t['variant']}: {t['img_s'] / bare[0]['img_s']:.2f}x the bare objective step "
                     f"({bare[0]['variant']}): the trainer's own work (engine, EMA, syncs, copies)")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny CPU step benchmark (smoke test; runs on CPU)")
    ap.add_argument("--gpu-quick", action="store_true", help="CUDA: paper sizes at B=8 only, fewer steps")
    ap.add_argument("--csv", default=str(REPO / "docs" / "benchmarks" / "step.csv"), help="CSV to append rows to")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--batch", default=None, help="comma list of batch sizes (default CPU 8,4; CUDA 24,8)")
    ap.add_argument("--size", type=int, default=None, help="patch size (default CPU 64, CUDA 128)")
    ap.add_argument("--restorer", default=None, help="restorer name (default unet)")
    ap.add_argument("--restorer-preset", default="default")
    ap.add_argument("--restorer-args", default=None, help='JSON overrides, CPU default {"depth": 3, "wf": 16}')
    ap.add_argument("--diffusion-preset", default=None, help="default (paper, CUDA) or tiny (CPU)")
    ap.add_argument("--trainer-set", dest="trainer_sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the trainer variants (a lever, e.g. run.precision=bf16)")
    ap.add_argument("--variants", default=None,
                    help="impl-dtype[-cl][-compile], impl ours/trainer/official (trainer: -cl sets "
                         "run.channels_last=true, no -compile); CPU default "
                         "official-fp32,ours-fp32,trainer-fp32; CUDA default official-fp32,ours-fp32,ours-bf16,"
                         "trainer-fp32,trainer-bf16")
    ap.add_argument("--phases", default=None, help="default[,cudnn.benchmark] (CUDA default: both)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: what the process has)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="soft wall-clock budget of the step part incl. warmup, split over phases and batch "
                         "sizes (default CUDA 120 s, --gpu-quick 60 s); at least 2 timed rounds always run")
    ap.add_argument("--max-wall-s", type=float, default=None,
                    help="hard limit: a later phase's process is killed at this many seconds after start (its "
                         "finished batch sizes are kept); default CUDA 165 s, --gpu-quick 110 s, CPU none")
    # internal
    ap.add_argument("--phase-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase-json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = [a for a in (sys.argv[1:] if argv is None else list(argv))]
    return args


def resolve_defaults(args) -> torch.device:
    if args.quick and args.gpu_quick:
        raise SystemExit("--quick is the CPU smoke test, --gpu-quick the short CUDA run: pick one")
    default = "cpu" if args.quick else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(args.device or default)
    cuda = device.type == "cuda"
    if args.quick and cuda:
        raise SystemExit("--quick is the CPU smoke size; on CUDA use --gpu-quick")
    if args.gpu_quick and not cuda:
        raise SystemExit("--gpu-quick needs CUDA (no GPU visible)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        name, rargs = QUICK_RESTORER
        d = dict(batch="2", size=32, diffusion="tiny", warmup=1, steps=2,
                 variants="official-fp32,ours-fp32,trainer-fp32", phases="default", budget=60.0)
    elif cuda:
        name, rargs = "unet", {}
        d = dict(batch="8" if args.gpu_quick else "24,8", size=128, diffusion="default",
                 warmup=2 if args.gpu_quick else 3, steps=5 if args.gpu_quick else 10,
                 variants="official-fp32,ours-fp32,ours-bf16,trainer-fp32,trainer-bf16",
                 phases="default,cudnn.benchmark",
                 budget=60.0 if args.gpu_quick else 120.0, max_wall=110.0 if args.gpu_quick else 165.0)
    else:
        name, rargs = DEMO_RESTORER
        d = dict(batch="8,4", size=64, diffusion="tiny", warmup=1, steps=6,
                 variants="official-fp32,ours-fp32,trainer-fp32", phases="default", budget=240.0)
    args.restorer = args.restorer or name
    args.restorer_args_dict = json.loads(args.restorer_args) if args.restorer_args else (
        rargs if args.restorer == name else {})
    args.batch = args.batch or d["batch"]
    args.size = args.size or d["size"]
    args.diffusion_preset = args.diffusion_preset or d["diffusion"]
    args.warmup = d["warmup"] if args.warmup is None else args.warmup
    args.steps = d["steps"] if args.steps is None else args.steps
    args.variants = args.variants or d["variants"]
    args.phases = args.phases or d["phases"]
    args.budget_s = d["budget"] if args.budget_s is None else args.budget_s
    args.max_wall_s = d.get("max_wall") if args.max_wall_s is None else (args.max_wall_s or None)
    return device


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_defaults(args)

    if args.phase_worker is not None:  # one phase in a fresh process; rows back as JSON
        def save(rows):
            tmp = Path(args.phase_json + ".tmp")
            tmp.write_text(json.dumps(rows))
            tmp.replace(args.phase_json)

        run_phase(args, device, args.phase_worker, args.budget_s, lambda line: print(line, flush=True), save)
        return 0

    log = CsvLog(args.csv, CSV_FIELDS)
    meta = bench_meta(device)
    def emit(line: str = "") -> None:
        print(line, flush=True)

    emit(f"# bench step  {meta['timestamp']}  sha {meta['git_sha']}  {meta['device']}  torch {meta['torch']}  "
         f"deepspeed {meta['deepspeed']}" + (f"  threads {meta['threads']}  OMP_WAIT_POLICY="
                                             f"{os.environ.get('OMP_WAIT_POLICY')}" if device.type == "cpu" else ""))
    n_rows = 0
    emit(f"## joint training step: restorer {args.restorer} {args.restorer_args_dict or args.restorer_preset}, "
         f"diffusion {args.diffusion_preset}, {args.size}x{args.size}, B in {args.batch}, warmup {args.warmup}, "
         f"{args.steps} timed steps per variant (interleaved), alpha {ALPHA}; img/s = B / median step time")
    if device.type == "cuda":
        emit(f"# cuda: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} (fp32 convs run as TF32), "
             f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; bf16 = bf16 weights/inputs + fp32 "
             f"master Adam")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    start = time.monotonic()
    rows = []
    for i, phase in enumerate(phases):
        left = args.budget_s - (time.monotonic() - start)
        share = max(left / (len(phases) - i), 1.0)
        if i == 0:
            rows += run_phase(args, device, phase, share, emit)
        else:
            hard = args.max_wall_s - (time.monotonic() - _T0) if args.max_wall_s else None
            rows += run_phase_subprocess(args, phase, share, hard, emit)
    rows = [dict(meta, part="step", **r) for r in rows]
    emit()
    step_table(rows, emit)
    step_verdict(rows, device, emit)
    n_rows += log.append(rows)
    emit(f"# appended {n_rows} rows to {log.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
