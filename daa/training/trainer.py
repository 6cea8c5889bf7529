"""The Trainer: joint restorer + diffusion training under DeepSpeed (ZeRO 0–3, fp32/bf16/fp16, accumulation).

One optimizer step consumes `global_batch` images = micro_batch × grad_accum × world. Progress, the α ramp, the EMA,
logging, evaluation and checkpoints are all counted in images seen. Every random draw of a micro-step (ᾱ, swap
masks, ε, dropout) comes from generators seeded by (seed, rank, micro-step), so a resumed run continues exactly as
an uninterrupted one; the data stream's state is checkpointed per rank.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, TrainConfig, deepspeed_config, dump_yaml, load_config
from ..ema import EMA
from ..export import save_restorer
from ..models import build_diffusion_unet, build_restorer, count_parameters
from ..objective import DAAObjective, alpha_at
from .checkpoint import CheckpointDir, rng_state, set_rng_state, tag_for
from .distributed import DistInfo, all_reduce_max, all_reduce_mean, any_rank, barrier, init_distributed
from .elastic import load_rank_states_resharded, plan_elastic, prune_universal, universal_dir
from .evaluation import evaluate, save_grid, to_range
from .levers import apply_levers, to_layout
from .logger import RunLogger
from .watchdog import StallWatchdog, stall_limit_s

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DATA_SKIP_SAMPLES = ("corrupt_samples", "incomplete_samples", "size_mismatch")
"""data_shards.stream counters of samples skipped one by one."""
DATA_SKIP_KINDS = DATA_SKIP_SAMPLES + ("truncated_shards", "short_shards", "missing_shards", "unreachable_shards",
                                       "slow_shards", "read_retries")


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, quota, I/O error); the previous complete one is intact."""


class NonFiniteError(RuntimeError):
    """Too many micro-batches in a row had a non-finite input or loss: training cannot make a step."""


MAX_NONFINITE_IN_A_ROW = 64
"""Consecutive non-finite micro-batches (all ranks together) tolerated while one optimizer step is being filled."""


def step_seed(seed: int, rank: int, micro_step: int) -> int:
    """A distinct 63-bit seed per (run seed, rank, micro-step)."""
    return (seed * 1_000_003 + rank * 7_919 + micro_step * 104_729 + 12_345) % (2**63 - 1)


def build_objective(cfg: TrainConfig) -> DAAObjective:
    m = cfg.model
    restorer = build_restorer(m.restorer, m.restorer_preset, init=m.restorer_init, **m.restorer_args)
    denoiser = None
    if cfg.objective.mode != "baseline":
        denoiser = build_diffusion_unet(m.diffusion_preset, **m.diffusion_args)
    # the objective gets its own copy with the kernel choice: the config (and so its hash) is never mutated
    obj_cfg = dataclasses.replace(cfg.objective, kernels=cfg.run.kernels)
    return DAAObjective(restorer, denoiser, obj_cfg, cfg.schedule)


class Trainer:
    def __init__(self, cfg: TrainConfig, stream=None, valset=None):
        """`stream` (an iterator of batch dicts with state_dict/load_state_dict) and `valset` ((degraded, clean)
        tensors in [0,1]) default to the shard stream and validation split named in cfg.data."""
        self.cfg = cfg
        # the hash of the config: checkpoint markers record it so that _check_run_dir can compare before anything
        # is loaded or written
        self.config_hash = cfg.hash()
        if os.environ.get("WORLD_SIZE", "").isdigit():
            # the batch arithmetic against the launcher's world size before the group forms: every rank fails on
            # its own with the one-line error, instead of one rank failing first while another is still joining the
            # group and then dies there, stopped by the launcher, with a traceback (seen under load)
            cfg.grad_accum(int(os.environ["WORLD_SIZE"]))
        self.dist: DistInfo = init_distributed(cfg.run.dist_timeout_minutes)
        self.run_dir = Path(cfg.run.run_dir)
        # batch arithmetic against the real world size, before anything is written into the run directory
        self.accum = cfg.grad_accum(self.dist.world_size)
        self.ds_config = deepspeed_config(cfg, self.dist.world_size)
        # data first: a wrong path fails before anything is written into the run directory
        self.stream = stream if stream is not None else self._build_stream()
        self.valset = valset if valset is not None else self._load_valset()
        self._check_run_dir()
        self.log = RunLogger(self.run_dir, self.dist.is_main, cfg.run.tensorboard)
        # before the engine: loading a universal checkpoint is a DeepSpeed config option
        self.elastic = plan_elastic(self.run_dir, self.dist, cfg.run.zero_stage)
        if self.elastic and cfg.run.zero_stage > 0:
            self.ds_config = {**self.ds_config, "checkpoint": {"load_universal": True}}
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            # ...but do not NaN-fill every torch.empty: DeepSpeed allocates GB-sized gradient buckets with it
            torch.utils.deterministic.fill_uninitialized_memory = False
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.objective = build_objective(cfg)
        apply_levers(self.objective, cfg.run.compile)
        if torch.cuda.is_available() and not cfg.run.deterministic:
            torch.backends.cudnn.benchmark = cfg.run.cudnn_benchmark
        self.value_range = cfg.data.range()
        self.dtype = DTYPES[cfg.run.precision]
        # the EMA copy is taken before DeepSpeed wraps the model: under ZeRO-3 the params are partitioned after
        self.ema = EMA(self.objective.restorer, cfg.run.ema_half_life_images).to(self.dist.device)
        self.engine = self._build_engine()
        self.restorer = self.engine.module.restorer
        self._has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.restorer.modules())
        self.images_seen = 0
        self.micro_step = 0
        self.skipped_steps = 0
        self.ckpt = CheckpointDir(self.run_dir)
        self.history: list[dict[str, Any]] = []
        self._resume()

    # ---- construction ---------------------------------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        """A run directory belongs to one config: a rerun of the same command resumes, another config is refused."""
        cfg_path = self.run_dir / "config.yaml"
        if cfg_path.is_file():
            old = load_config(str(cfg_path))
            if old.hash() != self.cfg.hash():
                a, b = _flat(old.to_dict()), _flat(self.cfg.to_dict())
                diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in _resumable()]
                raise ConfigError(f"run dir {self.run_dir} holds a run with a different config "
                                  f"(differs in {', '.join(diff[:5]) or 'hash'}); use another run.run_dir")
        # checkpoints copied in from another run are refused here, before config.yaml is written
        ckpt = CheckpointDir(self.run_dir)
        tag = ckpt.latest(warn=False)
        saved = ckpt.config_hash(tag) if tag else None
        if saved is not None and saved != self.config_hash:
            raise ConfigError(f"checkpoint {ckpt.root / tag} was written by a different config (hash {saved}, "
                              f"this config {self.config_hash}); use another run.run_dir")
        barrier()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg_path.write_text(dump_yaml(self.cfg))
        barrier()

    def _build_engine(self):
        import deepspeed

        o = self.cfg.optim
        obj = self.objective
        groups = [{"params": list(obj.restorer.parameters()), "lr": o.lr}]
        if obj.denoiser is not None:
            groups.append({"params": list(obj.denoiser.parameters()), "lr": o.diffusion_lr or o.lr})
        # a client torch optimizer: no C++ op is JIT-built, and it is exactly the official Adam
        opt = torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        engine, *_ = deepspeed.initialize(model=obj, optimizer=opt, config=self.ds_config)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "ds_config.json").write_text(json.dumps(self.ds_config, indent=2))
            n_r = count_parameters(obj.restorer)
            n_d = count_parameters(obj.denoiser) if obj.denoiser is not None else 0
            self.log.info(f"mode={self.cfg.objective.mode} restorer={self.cfg.model.restorer} ({n_r:,} params) "
                          f"diffusion={n_d:,} params  world={self.dist.world_size} micro={self.cfg.run.micro_batch} "
                          f"accum={self.accum} zero={self.cfg.run.zero_stage} precision={self.cfg.run.precision} "
                          f"device={self.dist.device}")
        return engine

    def _build_stream(self):
        d = self.cfg.data
        if d.shards == "synthetic":  # procedural batches: smoke tests, benchmarks, dry runs without data
            from data_shards.synthetic import SyntheticStream

            return SyntheticStream(self.cfg.run.micro_batch, d.patch_size, self.cfg.run.seed, self.dist.rank,
                                   with_ref=self.cfg.objective.mode == "daa_ref")
        from data_shards import urls
        from data_shards.stream import StreamConfig, TrainStream

        if not d.shards:
            raise ConfigError("data.shards is empty: point it at a directory written by `python -m data_shards.write`")
        if urls.kind(d.shards) == "local" and not (Path(d.shards) / "manifest.json").is_file():
            raise ConfigError(f"data.shards={d.shards} has no manifest.json: write shards with "
                              f"`python -m data_shards.write` (or use data.shards=synthetic)")
        scfg = StreamConfig(shards=d.shards, patch_size=d.patch_size, batch_size=self.cfg.run.micro_batch,
                            seed=self.cfg.run.seed, num_workers=d.num_workers, task=d.task,
                            awgn_sigma=tuple(d.awgn_sigma), with_ref=self.cfg.objective.mode == "daa_ref",
                            with_real=self.cfg.objective.mode != "baseline",  # a baseline never reads x_r
                            pin_memory=torch.cuda.is_available() if d.pin_memory is None else d.pin_memory,
                            read_timeout=d.read_timeout, min_rate=d.min_rate, rate_window=d.rate_window,
                            verify_sha256=d.verify_sha256, trust_manifest_locations=d.trust_manifest_locations)
        try:
            return TrainStream(scfg, rank=self.dist.rank, world_size=self.dist.world_size)
        except FileNotFoundError as e:  # a remote manifest that is missing or unreachable: one line
            raise ConfigError(f"data.shards={d.shards}: {e}") from None

    def _load_valset(self):
        if not self.cfg.data.val:
            return None
        from data_shards.valset import load_valset

        if not Path(self.cfg.data.val).is_dir():
            raise ConfigError(f"data.val={self.cfg.data.val} is not a directory: write it with "
                              f"`python -m data_shards.valset`, or set data.val= to train without evaluation")
        x, y = load_valset(self.cfg.data.val)
        if self.cfg.data.val_limit:
            x, y = x[: self.cfg.data.val_limit], y[: self.cfg.data.val_limit]
        return x, y

    # ---- checkpoints ----------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        tag = self.ckpt.latest()
        for b in self.ckpt.incomplete_newer(tag):  # also in log.txt: warnings may be filtered (PYTHONWARNINGS)
            self.log.info(f"checkpoint {b} is incomplete (no COMPLETE marker, cut off while being written): skipped")
        if tag is None:
            return
        el = self.elastic
        src = universal_dir(self.run_dir) if el and self.cfg.run.zero_stage > 0 else self.ckpt.root
        _, client = self.engine.load_checkpoint(str(src), tag=tag, load_module_strict=True)
        if client is None:
            raise RuntimeError(f"checkpoint {self.ckpt.root / tag} could not be loaded")
        if el:
            self.engine._config.load_universal_checkpoint = False  # the next loads (if any) are ordinary ones
        # older checkpoints recorded the hash of a config whose objective.kernels had been set
        # from run.kernels; they belong to this run too
        legacy = dataclasses.replace(self.cfg, objective=dataclasses.replace(self.cfg.objective,
                                                                             kernels=self.cfg.run.kernels)).hash()
        if client.get("config_hash") not in (self.config_hash, legacy):
            raise ConfigError(f"checkpoint {tag} was written by a different config (hash {client.get('config_hash')})")
        self.images_seen, self.micro_step = client["images_seen"], client["micro_step"]
        # DeepSpeed keeps its own `skipped_steps` key in the checkpoint and drops it from the client state on load;
        # checkpoints that stored ours under that name have it in the engine's counter instead
        self.skipped_steps = client.get("daa_skipped_steps", self.engine.skipped_steps)
        self.ema.module.load_state_dict(client["ema"])
        if el:
            load_rank_states_resharded(self, tag, el["from_world"])
        else:
            state = self.ckpt.read_rank_state(tag, self.dist.rank)
            if state is not None:
                if hasattr(self.stream, "load_state_dict") and state.get("stream") is not None:
                    self.stream.load_state_dict(state["stream"])
                set_rng_state(state["rng"])
        self.history = client.get("history", [])
        self.log.info(f"resumed from {tag}: {self.images_seen:,} images seen")
        if el:
            made = "reused" if el.get("reused") else f"made in {el['seconds']:.1f} s"
            how = (f"universal checkpoint {made}, {el['bytes'] / 2**20:.1f} MiB extra disk"
                   if self.cfg.run.zero_stage > 0 else "no ZeRO partitions: loaded as it is")
            self.log.info(f"elastic resume: {tag} was written by {el['from_world']} rank(s), continuing on "
                          f"{self.dist.world_size} with grad_accum {self.accum} ({how})")

    def save_checkpoint(self) -> str:
        step = self.engine.global_steps
        tag = tag_for(step)
        client = {"images_seen": self.images_seen, "micro_step": self.micro_step, "config_hash": self.config_hash,
                  "ema": self.ema.module.state_dict(), "daa_skipped_steps": self.skipped_steps,
                  "history": self.history}
        try:
            self.engine.save_checkpoint(str(self.ckpt.root), tag=tag, client_state=client)  # every rank: ZeRO shards
            stream_state = self.stream.state_dict() if hasattr(self.stream, "state_dict") else None
            self.ckpt.write_rank_state(tag, self.dist.rank, {"stream": stream_state, "rng": rng_state()})
        except (OSError, RuntimeError) as e:  # ENOSPC/EFBIG/EIO: torch's zip writer raises RuntimeError
            # the directory never gets its COMPLETE marker, so a rerun skips it and resumes from the previous one
            prev = self.ckpt.latest(warn=False)
            raise CheckpointWriteError(f"rank {self.dist.rank}: writing checkpoint {self.ckpt.root / tag} failed "
                                       f"({_first_line(e)}); the last complete checkpoint "
                                       f"{prev or '(none)'} and the exports are untouched") from e
        barrier()
        self.export()
        if self.dist.is_main:
            self.ckpt.mark_complete(tag, self.config_hash)
            self.ckpt.prune(self.cfg.run.keep_checkpoints)
            prune_universal(self.run_dir, set(self.ckpt.complete_tags()))
        barrier()
        return tag

    def export(self) -> None:
        """Restorer-only safetensors (raw and EMA weights) that load without DeepSpeed. Called on every rank
        (gathering ZeRO-3 partitions is collective); rank 0 writes."""
        with self._gathered(self.restorer):
            raw = {k: v.detach().clone() for k, v in self.restorer.state_dict().items()} if self.dist.is_main else {}
        if not self.dist.is_main:
            return
        m = self.cfg.model
        meta = {"restorer": m.restorer, "preset": m.restorer_preset, "args": m.restorer_args,
                "value_range": list(self.value_range), "task": self.cfg.data.task, "images_seen": self.images_seen,
                "mode": self.cfg.objective.mode}
        save_restorer(self.run_dir / "export" / "restorer.safetensors", raw, {**meta, "ema": False})
        save_restorer(self.run_dir / "export" / "restorer_ema.safetensors", self.ema.module, {**meta, "ema": True})

    def _gathered(self, module):
        """Full parameters of `module` for reading (ZeRO-3 partitions them across ranks)."""
        if self.cfg.run.zero_stage == 3:
            import deepspeed

            return deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
        import contextlib

        return contextlib.nullcontext()

    # ---- one step -------------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: to_layout(to_range(v, self.value_range).to(self.dist.device, self.dtype, non_blocking=True),
                             self.cfg.run.channels_last)
                for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def train_step(self, batches) -> dict[str, torch.Tensor]:
        """One optimizer step: grad_accum finite micro-batches. Returns the averaged loss terms of this rank as device
        tensors: they are read (a host sync) only when they are logged.

        A micro-batch whose input or loss is non-finite on any rank is skipped on every rank (no backward, no
        engine.step()) and *replaced* by the next one from the stream, so every optimizer step still averages
        exactly grad_accum finite micro-batches. Skipping it without a replacement would leave DeepSpeed's micro-step
        counter one behind: from then on its accumulation boundary falls in the middle of our train_step, half an
        accumulated gradient straddles every optimizer step and every checkpoint (DeepSpeed does not save partial
        gradients), and a resume would no longer continue the run it interrupted. Replacing keeps
        `engine.micro_steps` a multiple of grad_accum after every call on every rank (the decision is all-reduced);
        the skipped batch still counts its images and its micro-step seed, so the data stream and the random
        draws of a resumed run stay the same. More than MAX_NONFINITE_IN_A_ROW such batches in one step stop the
        run with NonFiniteError (a diverged model would otherwise consume the whole stream).

        Host syncs: one per micro-step — a single all-reduced pair of flags (non-finite input on any rank,
        non-finite loss on any rank) read after the forward. A restorer with BatchNorm adds one before the forward:
        a forward pass in train mode on a non-finite batch would already write NaN into the running statistics
        (and from there into the EMA, which copies buffers), so for it the input is checked first."""
        sums: dict[str, torch.Tensor] = {}
        n_ok = bad_in_a_row = 0
        while n_ok < self.accum:
            if bad_in_a_row > MAX_NONFINITE_IN_A_ROW:
                raise NonFiniteError(f"{bad_in_a_row} micro-batches in a row had a non-finite input or loss (at "
                                     f"{self.images_seen:,} images): the data or the model has diverged; lower "
                                     "optim.lr or check the data, then resume from the last complete checkpoint")
            batch = self._to_device(next(batches))
            bad_input = ~torch.stack([torch.isfinite(v).all() for v in batch.values()]).all()  # on the device
            if self._has_batchnorm and all_reduce_max(bad_input.float().reshape(1))[0]:
                self._skip_micro_step("non-finite input batch", images=True)
                bad_in_a_row += 1
                continue
            seed = step_seed(self.cfg.run.seed, self.dist.rank, self.micro_step)
            torch.manual_seed(seed)  # dropout and every draw of this micro-step
            alpha = alpha_at(self.images_seen, self.cfg.objective)
            out = self.engine(batch, alpha=alpha)
            loss = out["loss"]
            self.micro_step += 1
            self.images_seen += self.cfg.run.micro_batch * self.dist.world_size
            flags = torch.stack([bad_input, ~torch.isfinite(loss.detach()).all()]).float()
            bad_in, bad_loss = all_reduce_max(flags)  # the one sync of this micro-step
            if bad_in or bad_loss:  # on any rank: every rank skips it (no backward, no step) and draws another
                self._skip_micro_step("non-finite input batch" if bad_in else "non-finite loss", images=False)
                bad_in_a_row += 1
                continue
            bad_in_a_row = 0
            self.engine.backward(loss)
            boundary = self.engine.is_gradient_accumulation_boundary()
            self.engine.step()
            n_ok += 1
            for k, v in out.items():
                if v.numel() == 1:
                    t = v.detach().to(torch.float64).reshape(())
                    sums[k] = sums[k] + t if k in sums else t
            if boundary:
                with self._gathered(self.restorer):
                    self.ema.update(self.restorer, self.cfg.run.global_batch)
        return {k: v / n_ok for k, v in sums.items()}

    def _skip_micro_step(self, why: str, images: bool) -> None:
        if images:  # skipped before the forward: the micro-step still counts its images
            self.micro_step += 1
            self.images_seen += self.cfg.run.micro_batch * self.dist.world_size
        self.skipped_steps += 1
        self.log.info(f"{why} at {self.images_seen:,} images: micro-step skipped, the next batch "
                      f"takes its place ({self.skipped_steps} so far)")

    # ---- the loop -------------------------------------------------------------------------------------------------
    def _on_sigterm(self, signum, frame) -> None:
        self._stop_requested = True  # acted on at the next step boundary, on every rank together

    def fit(self) -> dict[str, Any]:
        """Train until run.total_images. SIGTERM (Slurm preemption, `scancel`) saves a checkpoint and returns."""
        cfg = self.cfg.run
        self._stop_requested = False
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
            # restart system calls the signal interrupts (SA_RESTART): Python installs handlers without it, so a
            # SIGTERM landing inside a blocking gloo/NCCL socket call could fail that collective with EINTR instead
            # of being acted on at the next step boundary
            signal.siginterrupt(signal.SIGTERM, False)
        batches = iter(self.stream)
        last = {"log": self.images_seen, "eval": self.images_seen, "ckpt": self.images_seen}
        acc: dict[str, float] = {}
        n_acc, t0, img0 = 0, time.time(), self.images_seen
        bar = _progress(self.dist.is_main, cfg.total_images, self.images_seen)
        final: dict[str, Any] = {}
        # multi-rank only: one process alone has no collective that could hang
        dog = (StallWatchdog(stall_limit_s(cfg.dist_timeout_minutes), self.dist.rank, cfg.dist_timeout_minutes).start()
               if self.dist.world_size > 1 else None)
        beat = dog.beat if dog is not None else (lambda: None)
        try:
            while self.images_seen < cfg.total_images:
                before = self.images_seen
                terms = self.train_step(batches)
                beat()
                for k, v in terms.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                if bar is not None:
                    bar.update(self.images_seen - before)
                if self.images_seen - last["log"] >= cfg.log_every_images or self.images_seen >= cfg.total_images:
                    rec = all_reduce_mean({**{k: v / n_acc for k, v in acc.items()},
                                           "skipped_samples": self._data_skips(total=True)}, self.dist.device)
                    rec["skipped_samples"] = round(rec["skipped_samples"] * self.dist.world_size)
                    dt = time.time() - t0
                    rec.update(images_seen=self.images_seen, kimg=self.images_seen / 1000,
                               step=self.engine.global_steps, images_per_s=(self.images_seen - img0) / max(dt, 1e-9),
                               skipped_steps=self.skipped_steps, lr=self.engine.get_lr()[0])
                    gn = self.engine.get_global_grad_norm()
                    if gn is not None and math.isfinite(float(gn)):
                        rec["grad_norm"] = float(gn)
                    if torch.cuda.is_available():
                        rec["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
                    self.log.stats(rec, self.images_seen)
                    self.history.append({k: rec[k] for k in ("kimg", "loss", "pix", "noise") if k in rec})
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}",
                                        img_s=f"{rec['images_per_s']:.1f}")
                    acc, n_acc, t0, img0, last["log"] = {}, 0, time.time(), self.images_seen, self.images_seen
                    beat()
                done = self.images_seen >= cfg.total_images
                if self.valset is not None and (self.images_seen - last["eval"] >= cfg.eval_every_images or done):
                    final = self.evaluate()
                    last["eval"] = self.images_seen
                    beat()
                if self.images_seen - last["ckpt"] >= cfg.ckpt_every_images or done:
                    self.save_checkpoint()
                    last["ckpt"] = self.images_seen
                elif any_rank(self._stop_requested, self.dist.device):
                    tag = self.save_checkpoint()
                    self.log.info(f"SIGTERM: saved checkpoint {tag} at {self.images_seen:,} images; exiting")
                    break
                beat()
            # corrupt samples the data stream skipped, summed over ranks: reported, never silent
            counts = all_reduce_mean({k: float(self._data_skips().get(k, 0)) for k in DATA_SKIP_KINDS},
                                     self.dist.device)
        finally:
            if dog is not None:
                dog.stop()
            if bar is not None:
                bar.close()
        counts = {k: round(v * self.dist.world_size) for k, v in counts.items()}
        detail = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"
        self.log.info(f"finished: {self.images_seen:,} images, {self.skipped_steps} skipped micro-steps, "
                      f"{sum(counts[k] for k in DATA_SKIP_SAMPLES)} skipped samples ({detail})")
        return final

    def _data_skips(self, total: bool = False):
        """This rank's data-stream problem counts (stream.stats), or the number of skipped samples."""
        stats = dict(getattr(self.stream, "stats", None) or {})
        return float(sum(stats.get(k, 0) for k in DATA_SKIP_SAMPLES)) if total else stats

    def evaluate(self) -> dict[str, float]:
        """EMA restorer on the validation split (rank 0), with a sample grid; other ranks wait."""
        res: dict[str, float] = {}
        if self.dist.is_main:
            x, y = self.valset
            res, restored = evaluate(self.ema.module, x, y, self.value_range, self.dist.device)
            with self._gathered(self.restorer):
                raw, _ = evaluate(self.restorer, x, y, self.value_range, self.dist.device, dtype=self.dtype)
            res.update({k.replace("val/", "val_raw/"): v for k, v in raw.items() if k != "val/input_psnr"})
            res.update(images_seen=self.images_seen, kimg=self.images_seen / 1000)
            self.log.stats(res, self.images_seen)
            self.log.info("eval " + "  ".join(f"{k}={v:.4f}" for k, v in res.items() if k.startswith("val")))
            save_grid(self.run_dir / "samples" / f"img{self.images_seen:010d}.png", x, restored, y,
                      n=self.cfg.run.sample_images)
        elif self.cfg.run.zero_stage == 3:
            with self._gathered(self.restorer):  # ZeRO-3 gathering is collective: every rank takes part
                pass
        barrier()
        return res

    def close(self) -> None:
        self.log.close()
        if hasattr(self.stream, "close"):
            self.stream.close()


def _first_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def _progress(enabled: bool, total: int, initial: int):
    if not enabled or os.environ.get("DAA_NO_TQDM"):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="img", unit_scale=True, dynamic_ncols=True, smoothing=0.1)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in ("model", "objective", "schedule", "data", "optim", "run"):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _resumable():
    from ..config import RESUMABLE_FIELDS

    return RESUMABLE_FIELDS
