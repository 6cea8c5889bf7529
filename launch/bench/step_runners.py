"""The variants the step benchmark (step.py) times: the bare objective step, the Trainer's step and the faithful
official step, each with its own networks, optimizer and inputs."""
from __future__ import annotations

import copy
import dataclasses
import json

import torch

ALPHA = 0.1


@dataclasses.dataclass(frozen=True)
class Variant:
    impl: str  # "ours" (the objective alone) | "trainer" (what users run) | "official" (the faithful official step)
    dtype: str  # "fp32" | "bf16"
    channels_last: bool = False
    compiled: bool = False  # torch.compile of both networks (the condition op stays the fused Triton kernel)

    @property
    def name(self) -> str:
        suffix = (" +cl" if self.channels_last else "") + (" +comp" if self.compiled else "")
        return f"{self.impl} {self.dtype}{suffix}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16}[self.dtype]


def parse_variants(spec: str) -> list[Variant]:
    """'official-fp32,ours-fp32,ours-fp32-cl,ours-bf16,ours-bf16-cl,ours-bf16-compile'."""
    out = []
    for item in spec.split(","):
        parts = item.strip().split("-")
        flags = set(parts[2:])
        if len(parts) < 2 or parts[0] not in ("ours", "official", "trainer") or parts[1] not in ("fp32", "bf16") \
                or not flags <= {"cl", "compile"} or len(flags) != len(parts) - 2:
            raise SystemExit(f"bad variant {item!r}: use impl-dtype[-cl][-compile], impl in ours/trainer/official, "
                             f"dtype fp32/bf16")
        if parts[0] == "trainer" and "compile" in flags:
            raise SystemExit("trainer variants take no -compile flag: the trainer's config decides (--trainer-set "
                             "run.compile=...); -cl is run.channels_last=true")
        if parts[0] == "official" and (parts[1] != "fp32" or flags):
            raise SystemExit("the official step is benchmarked as the official code runs it: official-fp32 only")
        out.append(Variant(parts[0], parts[1], "cl" in flags, "compile" in flags))
    return out


OFFICIAL_EMA_DECAY = 0.9999
"""The official EMA: a full copy of the Network (restorer + diffusion U-Net) updated after every step."""


class StepRunner:
    """One variant: its own copy of the networks, its own Adam, the batch and draws in its dtype/layout.

    `official` is the official training step as the official code runs it: two restorer calls, clone/mask swaps, two
    diffusion calls on a U-Net with guided-diffusion's x·sigmoid(x) SiLU, fp32, one Adam over both networks, then the
    per-step EMA over all parameters of both networks and the four `.item()` reads of the logged loss terms (host
    syncs); on CUDA it is timed in the cudnn.benchmark phase (its configs use seed −1, which turns benchmark on)."""

    def __init__(self, variant: Variant, restorer, denoiser, batch, draws, device):
        from daa.models import build_diffusion_unet
        from daa.objective import DAAObjective, ObjectiveConfig, StepDraws

        self.variant = v = variant
        dt = v.torch_dtype
        fmt = torch.channels_last if v.channels_last else torch.contiguous_format
        r, d = copy.deepcopy(restorer), copy.deepcopy(denoiser)
        if v.impl == "official":  # the same weights in a U-Net with the official SiLU
            d = build_diffusion_unet("default", **{**dataclasses.asdict(denoiser.cfg), "silu": "official"})
            d.load_state_dict(denoiser.state_dict())
        self.obj = DAAObjective(r, d, ObjectiveConfig(mode="daa")).to(device=device, dtype=dt, memory_format=fmt)
        self.obj.train()
        if v.compiled:  # compiled lazily at the first (warm-up) step; parameters stay the same tensors
            self.obj.restorer = torch.compile(self.obj.restorer)
            self.obj.denoiser = torch.compile(self.obj.denoiser)
        self.batch = {k: t.to(device=device, dtype=dt).contiguous(memory_format=fmt) for k, t in batch.items()}
        noise = draws.noise.to(device=device, dtype=dt).contiguous(memory_format=fmt)
        gammas = draws.gammas.to(device)  # fp32, as the official gamma tensor
        if v.impl == "official":  # the official masks are CPU tensors (torch.rand(b) > 0.5)
            self.draws = StepDraws(gammas, draws.swap_pos.cpu(), draws.swap_neg.cpu(), noise, draws.t)
        else:
            self.draws = StepDraws(gammas, draws.swap_pos.to(device), draws.swap_neg.to(device), noise, draws.t)
        self.params = [p for p in self.obj.parameters() if p.requires_grad]
        self.ema = [p.detach().clone() for p in self.params] if v.impl == "official" else None
        if dt == torch.float32:
            self.masters = None
            self.opt = torch.optim.Adam(self.params, lr=1e-4)
        else:  # DeepSpeed-style bf16: bf16 weights/grads, fp32 master weights stepped by Adam, copied back
            self.masters = [p.detach().float().clone() for p in self.params]
            self.opt = torch.optim.Adam(self.masters, lr=1e-4)

    def step(self) -> None:
        from daa.official import official_step_loss

        for p in self.params:
            p.grad = None
        if self.variant.impl == "ours":
            loss = self.obj(self.batch, ALPHA, self.draws)["loss"]
        else:
            terms: dict = {}
            loss = official_step_loss(self.obj.restorer, self.obj.denoiser, self.batch, self.draws, ALPHA,
                                      terms=terms)
        loss.backward()
        if self.masters is None:
            self.opt.step()
        else:
            for m, p in zip(self.masters, self.params):
                m.grad = p.grad.float()
            self.opt.step()
            with torch.no_grad():
                torch._foreach_copy_(self.params, self.masters)
        if self.ema is not None:  # the official per-parameter EMA loop and logged scalars
            with torch.no_grad():
                for e, p in zip(self.ema, self.params):
                    e.mul_(OFFICIAL_EMA_DECAY).add_(p, alpha=1 - OFFICIAL_EMA_DECAY)
            _ = [loss.item(), terms["l_pix"].item(), terms["mse_pos"].item(), terms["triplet"].item()]


class TrainerRunner:
    """The `Trainer` as users run it: its DeepSpeed engine (ZeRO-2, run.precision from the variant), its EMA, every
    host sync of `Trainer.train_step`, batches coming from the CPU each step (an in-memory stream, so that the data
    pipeline is not what is timed). Builds its own networks of the same sizes."""

    def __init__(self, variant: Variant, args, batch_cpu: dict, batch_size: int, tmp: str, device):
        from daa.config import load_config
        from daa.training.trainer import Trainer

        sets = [f"model.restorer={args.restorer}", f"model.restorer_preset={args.restorer_preset}",
                f"model.restorer_args={json.dumps(args.restorer_args_dict)}",
                f"model.diffusion_preset={args.diffusion_preset}", "data.shards=synthetic", "data.val=",
                f"data.patch_size={args.size}", f"run.micro_batch={batch_size}", f"run.global_batch={batch_size}",
                "run.zero_stage=2", f"run.precision={variant.dtype}", f"run.run_dir={tmp}", "run.tensorboard=false",
                "run.total_images=1000000000", "run.log_every_images=1000000000", "optim.lr=1e-4",
                *args.trainer_sets, *(["run.channels_last=true"] if variant.channels_last else [])]
        cfg = load_config("denoise", sets)
        self.trainer = Trainer(cfg, stream=iter(()), valset=None)
        self.batches = _repeat(batch_cpu)

    def step(self) -> None:
        self.trainer.train_step(self.batches)


def _repeat(batch: dict):
    while True:
        yield batch
