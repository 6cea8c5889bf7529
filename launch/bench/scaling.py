"""Scaling model for many GPUs: the bytes each collective moves per optimizer step, measured, and
the images/s they allow on 8–256 GPUs under stated interconnect assumptions.

    python launch/bench/scaling.py                      # measure on 2 CPU ranks (ZeRO 1/2/3, fp32 + bf16), then model
    python launch/bench/scaling.py --step-ms 159 --batch 24   # the single-GPU step the model starts from

Measurement: 2 CPU ranks (torchrun, gloo), the paper's networks (restorer `unet` 8.56 M + diffusion U-Net 62.6 M),
DeepSpeed with its comms logger on; after a warm-up step, every collective of one optimizer step is recorded (op,
message bytes, count). Bytes do not depend on the image size or the batch (they are parameters and gradients), so
the steps run on 32² crops, batch 1. Each op is turned into the bytes one rank sends over its links with the ring
factors of NCCL (all-reduce 2(N−1)/N·S, reduce-scatter and all-gather (N−1)/N·S, S = the full message) — gloo on CPU
may pick other algorithms for the same ZeRO stage (it has no native reduce-scatter), so the ZeRO paper's volume
(stages 1–2: 2Ψ elements per step, stage 3: 3Ψ) is printed next to what was measured.

Model: a data-parallel step on N GPUs = the measured single-GPU compute time (`--step-ms` at `--batch`, default the
H200 bf16 step figure at B=24 from docs/benchmarks) + the communication time, bytes per GPU / bandwidth: inside a node
(N ≤ 8) NVLink, `--nvlink-gbs` GB/s per GPU; across nodes the inter-node link (one NIC per GPU, as on HGX H200 nodes,
or one NIC shared by the node's 8 GPUs: `--scenarios 400x8,200x8,400x1`). Two bounds: no overlap
(communication after compute) and full overlap (ZeRO's bucketed reduce-scatter hides behind the backward as long as
it is shorter). Efficiency = N-GPU images/s ÷ (N × single-GPU images/s). Writes docs/benchmarks/scaling.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from launch.harness import free_port, git_sha  # noqa: E402

RING = {"all_reduce": lambda n: 2 * (n - 1) / n, "reduce_scatter": lambda n: (n - 1) / n,
        "all_gather": lambda n: (n - 1) / n, "broadcast": lambda n: 1.0}
"""Bytes a rank sends per byte of message, by collective kind (NCCL's ring algorithms)."""


def op_kind(name: str) -> str:
    n = name.lower()
    for k in ("all_reduce", "reduce_scatter", "all_gather", "broadcast"):
        if k in n:
            return k
    return "other"


# ---- measurement (one rank, started by torch.distributed.run) --------------------------------------------------------
def worker(args) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import deepspeed.comm as dcomm
    import deepspeed.ops
    import torch

    from daa.models import build_diffusion_unet, build_restorer, count_parameters
    from daa.objective import DAAObjective, ObjectiveConfig

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    rank = dcomm.get_rank()
    out = []
    for precision in args.precisions.split(","):
        for stage in [int(s) for s in args.stages.split(",")]:
            torch.manual_seed(0)
            r = build_restorer("unet") if args.paper else build_restorer("unet", "tiny")
            d = build_diffusion_unet("default" if args.paper else "tiny", dropout=0.0)
            obj = DAAObjective(r, d, ObjectiveConfig(mode="daa", kernels="torch"))
            psi = count_parameters(obj)
            cfg = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
                   "train_batch_size": dcomm.get_world_size(), "zero_optimization": {"stage": stage},
                   "bf16": {"enabled": precision == "bf16"}, "steps_per_print": 10**9,
                   "comms_logger": {"enabled": True, "verbose": False, "prof_all": True}}
            if precision == "bf16":
                cfg["data_types"] = {"grad_accum_dtype": "fp32"}  # what daa.config emits for run.precision=bf16
            engine, *_ = deepspeed.initialize(model=obj, optimizer=torch.optim.Adam(obj.parameters(), lr=1e-4),
                                              config=cfg)
            dt = torch.bfloat16 if precision == "bf16" else torch.float32
            g = torch.Generator().manual_seed(rank)
            batch = {k: torch.rand(1, 3, args.size, args.size, generator=g).to(dt) for k in ("x_s", "y_s", "x_r")}
            for step in range(2):
                if step == 1:  # the warm-up step set up the buckets; count one step
                    dcomm.comms_logger.comms_dict.clear()
                loss = engine(batch, alpha=0.1)["loss"]
                engine.backward(loss)
                engine.step()
            ops = [{"op": name, "kind": op_kind(name), "bytes": int(size), "count": int(rec[0])}
                   for name, sizes in dcomm.comms_logger.comms_dict.items() for size, rec in sizes.items()]
            out.append({"stage": stage, "precision": precision, "psi": psi, "ops": ops})
            engine.destroy() if hasattr(engine, "destroy") else None
    if rank == 0:
        Path(args.json).write_text(json.dumps(out))
    return 0


def measure(args) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        js = Path(tmp) / "comms.json"
        env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), str(Path(__file__).resolve()), "--worker", "--json", str(js),
               "--stages", args.stages, "--precisions", args.precisions, "--size", str(args.size)]
        cmd.append("--paper" if args.paper else "--no-paper")
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
        if p.returncode != 0 or not js.is_file():
            raise SystemExit(f"error: the 2-rank measurement failed (rc {p.returncode}): "
                             f"{(p.stderr.strip().splitlines() or ['?'])[-1]}")
        return json.loads(js.read_text())


# ---- the model ------------------------------------------------------------------------------------------------------
MEASURED_WORLD = 2


def full_size(o: dict) -> float:
    """The whole message S of a logged op: DeepSpeed's comms logger sizes an all-gather by its input (one rank's
    partition, S / world) and the other collectives by their input tensor (the whole S)."""
    return o["bytes"] * (MEASURED_WORLD if o["kind"] == "all_gather" else 1)


def bytes_per_gpu(ops: list[dict], n: int) -> float:
    """Bytes one GPU sends per optimizer step on n GPUs (ring factors; 'other' ops counted once)."""
    return sum(full_size(o) * o["count"] * RING.get(o["kind"], lambda _: 1.0)(n) for o in ops)


def paper_bytes_per_gpu(stage: int, psi: int, precision: str, n: int) -> float:
    """The ZeRO paper's volume with NCCL's ring factor: reduce-scatter of the gradients + all-gather of the
    parameters ((N−1)/N each; stage 3 gathers the parameters twice), in the training dtype."""
    el = 2 if precision == "bf16" else 4
    return zero_paper_elements(stage, psi) * el * (n - 1) / n


def zero_paper_elements(stage: int, psi: int) -> float:
    """The ZeRO paper's communication volume per step, in parameter-sized elements: 2Ψ (stages 0-2), 3Ψ (stage 3)."""
    return (3 if stage == 3 else 2) * psi


def predict(b: float, n: int, step_ms: float, batch: int, nvlink_gbs: float, ib_gbps: float,
            nics_per_node: int) -> dict:
    """Images/s and efficiency on n GPUs when each sends `b` bytes per step."""
    if n <= 8:
        bw = nvlink_gbs * 1e9
    else:  # the inter-node hop bounds the ring: each GPU's share of its node's NICs
        bw = ib_gbps / 8 * 1e9 * min(1.0, nics_per_node / 8)
    comm_ms = 1e3 * b / bw
    single = batch / (step_ms / 1e3)
    out = {}
    for name, t in (("no overlap", step_ms + comm_ms), ("full overlap", max(step_ms, comm_ms))):
        ips = n * batch / (t / 1e3)
        out[name] = {"img_s": ips, "efficiency": ips / (n * single)}
    return {"gpus": n, "bytes_per_gpu": b, "comm_ms": comm_ms, **out}


def report(meas: list[dict], args) -> str:
    lines = [f"# Scaling model ({git_sha()})", "",
             f"Measured: 2 CPU ranks (gloo), DeepSpeed comms logger, {'paper' if args.paper else 'tiny'} networks; "
             f"one optimizer step after a warm-up. Model: single-GPU step {args.step_ms:g} ms at batch {args.batch} "
             f"per GPU; NVLink {args.nvlink_gbs:g} GB/s per GPU inside a node of 8; between nodes the scenarios "
             f"below (Gb/s per NIC × NICs per node).", "",
             "| ZeRO | precision | Ψ (params) | collectives of one step on 2 ranks (whole messages) | "
             "bytes/GPU/step at N=8, measured ops | at N=8, ZeRO paper volume |", "|---|---|---|---|---|---|"]
    for m in meas:
        kinds: dict[str, list[float]] = {}
        for o in m["ops"]:
            k = kinds.setdefault(o["kind"], [0.0, 0])
            k[0] += full_size(o) * o["count"]
            k[1] += o["count"]
        ops = "; ".join(f"{k}: {v[0] / 2**20:.1f} MiB in {v[1]} call(s)" for k, v in kinds.items()) or "none"
        lines.append(f"| {m['stage']} | {m['precision']} | {m['psi']:,} | {ops} | "
                     f"{bytes_per_gpu(m['ops'], 8) / 2**20:.1f} MiB | "
                     f"{paper_bytes_per_gpu(m['stage'], m['psi'], m['precision'], 8) / 2**20:.1f} MiB |")
    for scen in args.scenarios.split(","):
        ib, nics = scen.split("x")
        lines += ["", f"### {ib} Gb/s per NIC, {nics} NIC(s) per node of 8 GPUs", "",
                  "Predicted images/s (efficiency = ÷ N × single-GPU images/s). *measured* = the collectives gloo "
                  "ran (its ZeRO-1/2 all-reduce the gradients where NCCL reduce-scatters them); *paper* = the ZeRO "
                  "paper's volume, what NCCL runs.",
                  "", "| ZeRO | precision | GPUs | comm/step ms (measured / paper) | img/s no overlap (measured / "
                  "paper) | eff. | img/s full overlap (paper) | eff. |", "|---|---|---|---|---|---|---|---|"]
        lines += _rows(meas, args, float(ib), int(nics))
    return "\n".join(lines) + "\n"


def _rows(meas: list[dict], args, ib_gbps: float, nics: int) -> list[str]:
    lines = []
    for m in meas:
        for n in (8, 16, 32, 64, 128, 256):
            kw = dict(n=n, step_ms=args.step_ms, batch=args.batch, nvlink_gbs=args.nvlink_gbs, ib_gbps=ib_gbps,
                      nics_per_node=nics)
            pm = predict(bytes_per_gpu(m["ops"], n), **kw)
            pp = predict(paper_bytes_per_gpu(m["stage"], m["psi"], m["precision"], n), **kw)
            lines.append(f"| {m['stage']} | {m['precision']} | {n} | {pm['comm_ms']:.1f} / {pp['comm_ms']:.1f} | "
                         f"{pm['no overlap']['img_s']:,.0f} / {pp['no overlap']['img_s']:,.0f} | "
                         f"{pm['no overlap']['efficiency']:.0%} / {pp['no overlap']['efficiency']:.0%} | "
                         f"{pp['full overlap']['img_s']:,.0f} | {pp['full overlap']['efficiency']:.0%} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default="1,2,3")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--paper", action=argparse.BooleanOptionalAction, default=True,
                    help="the paper's networks (default) or tiny ones (--no-paper: a smoke test)")
    ap.add_argument("--size", type=int, default=32, help="crop size of the measured steps (bytes do not depend on it)")
    ap.add_argument("--step-ms", type=float, default=24 / 151 * 1e3,
                    help="single-GPU step time (default: 151 img/s at B=24, the H200 bf16 figure in docs/benchmarks)")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--nvlink-gbs", type=float, default=450.0, help="NVLink GB/s per GPU per direction")
    ap.add_argument("--scenarios", default="400x8,200x8,400x1",
                    help="inter-node links: Gb/s per NIC x NICs per node (HGX: one NIC per GPU; 400x1: one shared)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "scaling"), help="writes OUT.md and OUT.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a)
    meas = measure(a)
    text = report(meas, a)
    print(text)
    if a.out:
        Path(a.out + ".md").write_text(text)
        Path(a.out + ".json").write_text(json.dumps({"args": {k: v for k, v in vars(a).items() if k != "json"},
                                                      "measured": meas}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
