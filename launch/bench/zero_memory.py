"""ZeRO model-state memory per rank (`python launch/bench/zero_memory.py`, `make bench-step`).

2 ranks on CPU (gloo, `torch.distributed.run`, OMP_NUM_THREADS=1), ZeRO
stages 0-3 under `deepspeed.initialize` with a client `torch.optim.Adam`, in fp32, bf16 (DeepSpeed's default bf16
gradients) and bf16-fp32acc (+ grad_accum_dtype fp32, what daa.config emits for run.precision=bf16); demo-sized
objective, `--paper` for the 71.2 M-parameter one. After the backward of the second step every tensor reachable
from the engine, the module's parameters and the optimizers is collected, de-duplicated by storage, and classified
as params (the rank's copy: `p.ds_tensor` under ZeRO-3), grads, fp32 master, Adam state (exp_avg, exp_avg_sq) or
other (communication buckets, model buffers). Compared with the ZeRO paper's formulas for N ranks (Ψ parameters):
fp32 params 4Ψ, grads 4Ψ, Adam 8Ψ, no master; bf16 params 2Ψ, grads 2Ψ (4Ψ with fp32 accumulation), master + Adam
12Ψ; stage 1 divides the optimizer state (Adam + master) by N, stage 2 also the grads, stage 3 also the params.
`mid-bwd` is everything held (all categories) when the restorer's first weight gets its gradient, near the end of
backward, where ZeRO's reduce buckets are alive. On CPU these are allocated bytes; untouched pages of a bucket need
not be resident.

Rows are appended to a CSV (default docs/benchmarks/step.csv) with timestamp, git sha, device, torch and deepspeed
versions.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run from a checkout without installing (memory, not time: no OMP_WAIT_POLICY here)

import torch  # noqa: E402

from launch.bench.step import ALPHA, CSV_FIELDS, DEMO_RESTORER, _parse_ints, bench_meta, fmt_bytes  # noqa: E402
from launch.harness import CsvLog, free_port  # noqa: E402

ZERO_TOLERANCE = 0.10


# ---------------------------------------------------------------------------------------------------------------
# part 2: ZeRO model-state memory per rank
# ---------------------------------------------------------------------------------------------------------------
_WALK_MODULES = ("deepspeed", "torch.optim", "torch.nn", "daa", "kernels", "collections")
CATEGORIES = ("params", "grads", "master", "adam", "other")


class Ledger:
    """Storages held by a rank, each counted once (by storage address) under the first category that found it."""

    def __init__(self):
        self.seen: dict[int, tuple[str, str, int, str]] = {}
        self.visited: set[int] = set()

    def add(self, t, category: str, path: str) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        s = t.untyped_storage()
        n = s.nbytes()
        if n == 0 or s.data_ptr() in self.seen:
            return
        self.seen[s.data_ptr()] = (category, path, n, str(t.dtype).replace("torch.", ""))

    def walk(self, obj, path: str, classify, depth: int = 0) -> None:
        """Collect every tensor reachable through containers and deepspeed/torch objects' attributes."""
        if depth > 16 or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            return
        if id(obj) in self.visited:
            return
        if isinstance(obj, torch.Tensor):
            self.visited.add(id(obj))
            self.add(obj, classify(path), path)
            if obj.is_leaf and obj.grad is not None:
                self.walk(obj.grad, path + ".grad", classify, depth + 1)
            for k, v in getattr(obj, "__dict__", {}).items():
                self.walk(v, f"{path}.{k}", classify, depth + 1)
            return
        if isinstance(obj, dict):
            self.visited.add(id(obj))
            for k, v in list(obj.items()):
                key = k if isinstance(k, (str, int)) else type(k).__name__
                self.walk(k, f"{path}[key]", classify, depth + 1)
                self.walk(v, f"{path}[{key}]", classify, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            self.visited.add(id(obj))
            for i, v in enumerate(list(obj)):
                self.walk(v, f"{path}[{i}]", classify, depth + 1)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(_WALK_MODULES):
            self.visited.add(id(obj))
            for k, v in list(vars(obj).items()):
                self.walk(v, f"{path}.{k}", classify, depth + 1)

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for cat, _, n, _ in self.seen.values():
            out[cat] += n
        return out


def classify_path(path: str) -> str:
    """Category of a tensor found by the generic walk of the ZeRO wrapper / engine, from its attribute path."""
    p = path.lower()
    if "grad" in p:  # p.grad, averaged_gradients, grads_in_partition, ipg buffers, grad_partitions_flat_buffer
        return "grads"
    if "fp32" in p or "master" in p or "single_partition" in p:
        return "master"
    if "bit16" in p or "fp16" in p or "lp_param" in p:
        return "params"
    return "other"


def model_state_ledger(engine) -> Ledger:
    """Walk order sets the category of a storage reachable several ways: parameters and grads, then the torch Adam's
    state and parameters (fp32 masters under ZeRO / bf16), then the wrapper and engine by attribute name, then the
    mappings DeepSpeed hangs on parameters (views of the storages above)."""
    led = Ledger()
    module = engine.module
    named = list(module.named_parameters())
    # 1. the rank's copy of each parameter (ZeRO-3: only the partition p.ds_tensor) and its gradient
    for name, p in named:
        led.visited.add(id(p))
        led.add(p, "params", f"param:{name}")
        ds = getattr(p, "ds_tensor", None)
        if ds is not None:
            led.add(ds, "params", f"param:{name}.ds_tensor")
        if p.grad is not None:
            led.add(p.grad, "grads", f"param:{name}.grad")
    # 2. the torch Adam the engine steps: its state and, under ZeRO/bf16, its fp32 (master) parameters
    base = getattr(engine, "basic_optimizer", None) or engine.optimizer
    while not isinstance(base, torch.optim.Optimizer) and hasattr(base, "optimizer"):
        base = base.optimizer
    for key, st in base.state.items():
        for k, v in st.items():
            led.add(v, "adam", f"adam.{k}")
        led.add(key, "master", "adam.state[key]")  # ZeRO-3 empties param_groups between steps; the keys remain
    for gi, group in enumerate(base.param_groups):
        for pi, p in enumerate(group["params"]):
            led.add(p, "master", f"adam.param_groups[{gi}][{pi}]")
            if p.grad is not None:
                led.add(p.grad, "grads", f"adam.param_groups[{gi}][{pi}].grad")
    # 3. everything else the ZeRO / bf16 wrapper and the engine hold, 4. what hangs on the parameters
    led.walk(engine.optimizer, "opt", classify_path)
    led.walk(engine, "engine", classify_path)
    for name, p in named:
        for k, v in vars(p).items():
            led.walk(v, f"param:{name}.{k}", classify_path)
    return led


def zero_formula(stage: int, precision: str, psi: int, world: int) -> dict[str, float]:
    """ZeRO paper bytes per rank (model states only)."""
    if precision == "fp32":
        p, g, m, a = 4.0, 4.0, 0.0, 8.0
    else:  # bf16 weights and grads (fp32 grads with fp32 accumulation), fp32 master + Adam (K = 12)
        p, g, m, a = 2.0, 4.0 if precision == "bf16-fp32acc" else 2.0, 4.0, 8.0
    n = float(world)
    f = {"params": p * psi / (n if stage >= 3 else 1), "grads": g * psi / (n if stage >= 2 else 1),
         "master": m * psi / (n if stage >= 1 else 1), "adam": a * psi / (n if stage >= 1 else 1)}
    f["total"] = sum(f.values())
    return f


def zero_worker(args) -> int:
    """One rank of the ZeRO memory measurement (started by torch.distributed.run)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*(all_gather_into_tensor|reduce_scatter_tensor).*")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import deepspeed.ops

    from daa.models import build_diffusion_unet, build_restorer, count_parameters
    from daa.objective import DAAObjective, ObjectiveConfig

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # no 45 s JIT build of an op gloo never uses
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    results = []
    for precision in args.zero_precisions.split(","):
        for stage in _parse_ints(args.zero_worker):
            t0 = time.monotonic()
            torch.manual_seed(0)
            if args.paper:
                restorer, denoiser = build_restorer("unet"), build_diffusion_unet("default")
            else:
                restorer = build_restorer(DEMO_RESTORER[0], **DEMO_RESTORER[1])
                denoiser = build_diffusion_unet("tiny")
            obj = DAAObjective(restorer, denoiser, ObjectiveConfig(mode="daa", kernels="torch"))
            psi = count_parameters(obj)
            opt = torch.optim.Adam(obj.parameters(), lr=1e-4)
            cfg = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
                   "train_batch_size": world, "zero_optimization": {"stage": stage},
                   "bf16": {"enabled": precision.startswith("bf16")}, "steps_per_print": 10**9,
                   "wall_clock_breakdown": False}
            if precision == "bf16-fp32acc":  # what daa.config.deepspeed_config emits for run.precision=bf16
                cfg["data_types"] = {"grad_accum_dtype": "fp32"}
            row = dict(zero_stage=stage, precision=precision, world=world, rank=rank, psi=psi)
            engine = None
            try:
                engine, *_ = deepspeed.initialize(model=obj, optimizer=opt, config=cfg)
                dt = torch.bfloat16 if precision.startswith("bf16") else torch.float32
                g = torch.Generator().manual_seed(100 + rank)
                hw = args.zero_size
                mid: dict[str, int] = {}
                measuring = [False]

                def snapshot(_p, mid=mid, engine=engine, measuring=measuring):
                    # the restorer's first weight gets its gradient last: a look at what backward holds near its end
                    if measuring[0] and not mid:
                        mid.update(model_state_ledger(engine).totals())

                first = next(p for p in engine.module.parameters() if p.requires_grad)
                hook = first.register_post_accumulate_grad_hook(snapshot)
                for step in range(2):
                    measuring[0] = step == 1  # Adam state exists from step 0
                    batch = {k: torch.rand((1, 3, hw, hw), generator=g).to(dt) for k in ("x_s", "y_s", "x_r")}
                    draws = engine.module.draw(1, (3, hw, hw), torch.device("cpu"), generator=g,
                                               noise_generator=g, dtype=dt)
                    loss = engine(batch, ALPHA, draws)["loss"]
                    engine.backward(loss)
                    if measuring[0]:  # grads present
                        led = model_state_ledger(engine)
                    engine.step()
                hook.remove()
                tot = led.totals()
                row["persistent_bytes"] = sum(p.numel() * p.element_size()
                                              for p in engine.module.parameters() if getattr(p, "ds_persist", False))
                row["mid_backward_bytes"] = sum(mid.values()) if mid else None
                f = zero_formula(stage, precision, psi, world)
                state = tot["params"] + tot["grads"] + tot["master"] + tot["adam"]
                row.update(params_bytes=tot["params"], grads_bytes=tot["grads"], master_bytes=tot["master"],
                           adam_bytes=tot["adam"], other_bytes=tot["other"], model_state_bytes=state,
                           formula_bytes=int(f["total"]), measured_over_formula=round(state / f["total"], 4),
                           formula=f, status="ok", optimizer=type(engine.optimizer).__name__,
                           seconds=round(time.monotonic() - t0, 1),
                           largest=[(c, pth, n, dty) for c, pth, n, dty in
                                    sorted(led.seen.values(), key=lambda e: -e[2])[:args.zero_show]])
            except Exception as e:  # noqa: BLE001 - report the failing configuration and go on
                row.update(status=f"error: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                traceback.print_exc(file=sys.stderr)
            results.append(row)
            if engine is not None and hasattr(engine, "destroy"):
                engine.destroy()
            del engine, obj, opt
            gc.collect()
            dist.barrier()
    Path(args.zero_json).mkdir(parents=True, exist_ok=True)
    (Path(args.zero_json) / f"rank{rank}.json").write_text(json.dumps(results))
    dist.barrier()
    return 0


def run_zero(args, log) -> list[dict]:
    """Start 2 CPU ranks (torch.distributed.run, gloo, 1 thread each) and gather their ledgers."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="",
                   PYTHONWARNINGS="ignore")
        env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".torch_ext"))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.zero_world),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(Path(__file__).resolve()),
               "--zero-worker", args.zero_stages, "--zero-precisions", args.zero_precisions, "--zero-json", tmp,
               "--zero-size", str(args.zero_size), "--zero-show", str(args.zero_show)]
        if args.paper:
            cmd.append("--paper")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.zero_timeout)
        files = sorted(Path(tmp).glob("rank*.json"))
        if proc.returncode != 0 or len(files) != args.zero_world:
            log(f"# ZeRO workers failed (rc={proc.returncode}); last lines:")
            for line in (proc.stdout + proc.stderr).strip().splitlines()[-30:]:
                log(f"#   {line}")
        rows = [r for f in files for r in json.loads(f.read_text())]
        log(f"# ZeRO part: {len(rows)} rank-configurations in {time.monotonic() - t0:.0f} s")
        return sorted(rows, key=lambda r: (r["precision"], r["zero_stage"], r["rank"]))


def zero_table(rows: list[dict], emit) -> None:
    mib = 2**20
    emit(f"{'precision':<12} {'stage':>5} {'rank':>4} {'params':>9} {'grads':>9} {'master':>9} {'adam':>9} "
         f"{'sum MiB':>9} {'formula':>9} {'meas/form':>9} {'other':>8} {'mid-bwd':>9}  optimizer / status")
    for r in rows:
        if r.get("status") != "ok":
            emit(f"{r['precision']:<12} {r['zero_stage']:>5} {r['rank']:>4}  {r.get('status')}")
            continue
        f = r["formula"]
        mid = format(r["mid_backward_bytes"] / mib, ".2f") if r.get("mid_backward_bytes") else "-"
        emit(f"{r['precision']:<12} {r['zero_stage']:>5} {r['rank']:>4} {r['params_bytes'] / mib:>9.2f} "
             f"{r['grads_bytes'] / mib:>9.2f} {r['master_bytes'] / mib:>9.2f} {r['adam_bytes'] / mib:>9.2f} "
             f"{r['model_state_bytes'] / mib:>9.2f} {f['total'] / mib:>9.2f} {r['measured_over_formula']:>9.3f} "
             f"{r['other_bytes'] / mib:>8.2f} {mid:>9}  {r['optimizer']}")
        emit(f"{'':<12} {'':>5} {'':>4} {f['params'] / mib:>9.2f} {f['grads'] / mib:>9.2f} {f['master'] / mib:>9.2f} "
             f"{f['adam'] / mib:>9.2f} {'':>9} {'':>9} {'':>9} {'':>8} {'':>9}  (formula per category)")


def zero_verdict(rows: list[dict], emit) -> None:
    ok = [r for r in rows if r.get("status") == "ok"]
    for r in rows:
        if r.get("status") != "ok" and r["rank"] == 0:
            emit(f"# {r['precision']} ZeRO-{r['zero_stage']}: {r.get('status')} -> NOT CHECKED")
    if not ok:
        emit("# ZeRO: nothing measured -> target NOT CHECKED")
        return
    emit(f"# Psi = {ok[0]['psi']:,} parameters, {ok[0]['world']} ranks")
    for prec in sorted({r["precision"] for r in ok}):
        for stage in sorted({r["zero_stage"] for r in ok if r["precision"] == prec}):
            rs = [r for r in ok if r["precision"] == prec and r["zero_stage"] == stage]
            worst = max(rs, key=lambda r: abs(r["measured_over_formula"] - 1))
            x = worst["measured_over_formula"]
            f = worst["formula"]
            off = [c for c in ("params", "grads", "master", "adam")
                   if abs(worst[f"{c}_bytes"] - f[c]) > ZERO_TOLERANCE * max(f[c], 1e-9) and
                   abs(worst[f"{c}_bytes"] - f[c]) > 0.01 * f["total"]]
            why = ""
            if off:
                why = "  differs in " + ", ".join(
                    f"{c} {worst[c + '_bytes'] / f[c]:.2f}x" if f[c] else f"{c} {fmt_bytes(worst[c + '_bytes'])} vs 0"
                    for c in off)
            if worst.get("persistent_bytes"):
                why += (f"; ZeRO-3 keeps parameters below stage3_param_persistence_threshold whole on every rank: "
                        f"{fmt_bytes(worst['persistent_bytes'])}")
            emit(f"# {prec} ZeRO-{stage}: measured/formula {x:.3f} (worst rank); within {ZERO_TOLERANCE:.0%}: "
                 f"{'MET' if abs(x - 1) <= ZERO_TOLERANCE else 'NOT MET'}{why}")


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=str(REPO / "docs" / "benchmarks" / "step.csv"), help="CSV to append rows to")
    ap.add_argument("--paper", action="store_true", help="paper sizes (71.2 M params) instead of the demo objective")
    ap.add_argument("--zero-stages", default="0,1,2,3")
    ap.add_argument("--zero-precisions", default="fp32,bf16,bf16-fp32acc",
                    help="bf16 = DeepSpeed default (bf16 grads); bf16-fp32acc = + data_types.grad_accum_dtype=fp32, "
                         "as daa.config emits for run.precision=bf16")
    ap.add_argument("--zero-world", type=int, default=2)
    ap.add_argument("--zero-size", type=int, default=32, help="patch size of the ZeRO steps")
    ap.add_argument("--zero-show", type=int, default=0, help="list the N largest storages per rank/config")
    ap.add_argument("--zero-timeout", type=float, default=1200)
    ap.add_argument("--zero-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--zero-json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.zero_worker is not None:
        return zero_worker(args)
    log = CsvLog(args.csv, CSV_FIELDS)
    meta = bench_meta(torch.device("cpu"))

    def emit(line: str = "") -> None:
        print(line, flush=True)

    emit(f"# bench zero_memory  {meta['timestamp']}  sha {meta['git_sha']}  torch {meta['torch']}  "
         f"deepspeed {meta['deepspeed']}")
    emit(f"## ZeRO model states per rank: {'paper' if args.paper else 'demo'}-sized objective, "
         f"{args.zero_world} CPU ranks (gloo), client torch Adam, measured after the 2nd backward "
         f"(MiB = 2^20 bytes; 'other' = comm buckets and buffers, outside the formula)")
    zrows = run_zero(args, emit)
    zero_table(zrows, emit)
    if args.zero_show:
        for r in zrows:
            for cat, pth, n, dty in r.get("largest", []):
                emit(f"#   {r['precision']} z{r['zero_stage']} r{r['rank']}: {cat:<6} {n / 2**20:9.3f} MiB "
                     f"{dty:<8} {pth[:110]}")
    zero_verdict(zrows, emit)
    rows = [dict(meta, part="zero", **{k: v for k, v in r.items() if k in CSV_FIELDS}) for r in zrows]
    emit(f"# appended {log.append(rows)} rows to {log.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
