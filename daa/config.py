"""One typed config tree for a training run: YAML files in daa/configs/ (package data), `--set a.b=value`
overrides, validation with one-line errors, a hash that tells whether a run directory belongs to this config, and
the DeepSpeed JSON generated from it (so batch sizes and precision have one source).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .diffusion import ScheduleConfig
from .objective import ObjectiveConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Named configs ship inside the package, so `--config demo` works from an installed wheel."""
TASKS = ("denoise", "deblur", "derain")
PRECISIONS = ("fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A bad config value or key; the message is one line naming the problem."""


@dataclass
class ModelConfig:
    restorer: str = "unet"
    """Restorer name: unet (paper), dncnn, nafnet, restormer."""
    restorer_preset: str = "default"
    restorer_args: dict[str, Any] = field(default_factory=dict)
    """Field overrides of the restorer's config dataclass."""
    restorer_init: str = "kaiming"
    """'kaiming' (official init_weights), 'identity' (kaiming, output conv zeroed: R starts as x + 0), or 'torch'."""
    diffusion_preset: str = "default"
    diffusion_args: dict[str, Any] = field(default_factory=dict)
    """Field overrides of DiffusionUNetConfig (e.g. inner_channel, dropout, init, use_checkpoint)."""


@dataclass
class DataConfig:
    task: str = "denoise"
    shards: str = ""
    """Where the shards of `python -m data_shards.write` are (manifest.json + tars): a folder, an http(s):// base URL
    or a `pipe:CMD` with {} for the file name (data_shards.urls), or 'synthetic' for procedural
    batches (smoke tests and benchmarks without data)."""
    val: str = ""
    """Fixed validation split written by `python -m data_shards.valset` ('' = no evaluation)."""
    patch_size: int = 128
    num_workers: int = 2
    awgn_sigma: tuple[float, float] = (0.0, 75.0)
    """On-the-fly AWGN σ range in 8-bit units, used when the shards hold clean synthetic targets only."""
    value_range: str = "auto"
    """Range the networks see: '01', '11', or 'auto' = [0,1] for denoise, [-1,1] otherwise (official norm0/norm1)."""
    pin_memory: bool | None = None
    """Page-locked loader batches (None = on CUDA); the trainer copies them with non_blocking=True."""
    val_limit: int = 0
    """Evaluate on the first N validation crops only (0 = all)."""
    read_timeout: float = 60.0
    """Seconds a remote shard read (http(s), pipe:) may wait for a byte before it fails (and is retried)."""
    min_rate: float = 65536.0
    """Bytes/s a remote shard transfer must sustain over `rate_window` s of reading (else retried, then skipped and
    counted as slow_shards); 0 = no rate check."""
    rate_window: float = 30.0
    verify_sha256: bool = True
    """Check remote shards read whole against the manifest's sha256 (a mismatch is counted and warned)."""
    trust_manifest_locations: bool = False
    """Allow manifest entries that are URLs, pipe: commands or absolute paths (off: a one-line error)."""

    def range(self) -> tuple[float, float]:
        v = self.value_range if self.value_range != "auto" else ("01" if self.task == "denoise" else "11")
        return (0.0, 1.0) if v == "01" else (-1.0, 1.0)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    """Official: 1e-4 denoising, 5e-5 deblurring/deraining, constant, one Adam over both networks."""
    diffusion_lr: float | None = None
    """Separate learning rate for ε_θ (None = same as lr, the official single group)."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    """Global gradient-norm clipping (0 = off, official)."""


@dataclass
class RunConfig:
    run_dir: str = "runs/default"
    total_images: int = 20_000_000
    """Stop after this many training images (all ranks together)."""
    global_batch: int = 192
    """Images per optimizer step over all ranks = micro_batch × grad_accum × world size (official 8 × 24)."""
    micro_batch: int = 24
    """Images per rank per forward/backward."""
    zero_stage: int = 2
    precision: str = "fp32"
    """'fp32' (official), 'bf16' (fp32 gradient accumulation), or 'fp16' (dynamic loss scale)."""
    ema_half_life_images: float = 1_330_000.0
    """≈ the official decay 0.9999 per step at global batch 192."""
    log_every_images: int = 19_200
    eval_every_images: int = 1_920_000
    ckpt_every_images: int = 1_920_000
    keep_checkpoints: int = 3
    sample_images: int = 6
    """How many validation crops go into each sample grid PNG."""
    seed: int = 0
    deterministic: bool = False
    """Deterministic algorithms and fixed data order: resume reproduces an uninterrupted run exactly."""
    tensorboard: bool = True
    dist_timeout_minutes: float = 30.0
    """Collective timeout: a dead rank makes the others fail within this time instead of hanging."""
    kernels: str = "auto"
    """Condition builder: auto (Triton on CUDA), triton, torch."""
    channels_last: bool = False
    """The batches (and so the activations) in channels_last memory format (daa.training.levers)."""
    compile: str = "none"
    """torch.compile: none | networks | blocks (regional: each ResBlock / attention block; daa.training.levers)."""
    cudnn_benchmark: bool = False
    """Let cuDNN pick the fastest convolution algorithm per shape (CUDA; ignored in deterministic mode)."""
    zero_bucket_elements: int = 50_000_000
    """ZeRO reduce/all-gather bucket size in elements. DeepSpeed's default (5e8) allocates GB-sized buffers,
    far more than the ~71 M parameters of the paper's two networks need."""


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> TrainConfig:
        d, r = self.data, self.run
        if d.task not in TASKS:
            raise ConfigError(f"data.task must be one of {', '.join(TASKS)}, got {d.task!r}")
        if d.value_range not in ("auto", "01", "11"):
            raise ConfigError(f"data.value_range must be auto, 01 or 11, got {d.value_range!r}")
        if r.precision not in PRECISIONS:
            raise ConfigError(f"run.precision must be one of {', '.join(PRECISIONS)}, got {r.precision!r}")
        if r.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"run.zero_stage must be 0, 1, 2 or 3, got {r.zero_stage}")
        for name in ("total_images", "global_batch", "micro_batch", "log_every_images", "eval_every_images",
                     "ckpt_every_images", "keep_checkpoints"):
            if getattr(r, name) <= 0:
                raise ConfigError(f"run.{name} must be > 0, got {getattr(r, name)}")
        if d.patch_size < 8:
            raise ConfigError(f"data.patch_size must be >= 8, got {d.patch_size}")
        if self.model.restorer_init not in ("kaiming", "identity", "torch"):
            raise ConfigError("model.restorer_init must be kaiming, identity or torch, got "
                              f"{self.model.restorer_init!r}")
        if r.compile not in ("none", "networks", "blocks"):
            raise ConfigError(f"run.compile must be none, networks or blocks, got {r.compile!r}")
        if r.kernels not in ("auto", "triton", "torch"):
            raise ConfigError(f"run.kernels must be auto, triton or torch, got {r.kernels!r}")
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.optim.lr}")
        self._validate_networks()
        return self

    def _validate_networks(self) -> None:
        """Resolve the network configs now, so a typo fails before any process group or data is set up."""
        from .models.diffusion_unet import DiffusionUNetConfig
        from .models.registry import make_config, restorer_config

        m = self.model
        try:
            rc = restorer_config(m.restorer, m.restorer_preset, **m.restorer_args)
            # the data pipeline yields RGB and the objective adds R(x) to x: 3 channels in and out
            for side in ("in_channels", "out_channels"):
                if getattr(rc, side, 3) != 3:
                    raise ValueError(f"restorer_args.{side}={getattr(rc, side)}: training data is RGB, the restorer "
                                     "must take and return 3 channels")
            if self.objective.mode != "baseline":
                from .models.diffusion_unet import PRESETS as presets

                if m.diffusion_preset not in presets:
                    raise ValueError(f"model.diffusion_preset must be one of {', '.join(presets)}, "
                                     f"got {m.diffusion_preset!r}")
                make_config(DiffusionUNetConfig, {**presets[m.diffusion_preset], **m.diffusion_args},
                            "diffusion U-Net")
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None

    def grad_accum(self, world_size: int) -> int:
        r = self.run
        per_step = r.micro_batch * world_size
        if r.global_batch % per_step:
            raise ConfigError(f"run.global_batch={r.global_batch} is not a multiple of micro_batch × world size = "
                              f"{r.micro_batch} × {world_size}")
        return r.global_batch // per_step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of everything that changes what is trained; fields safe to change on resume are left out."""
        d = identity_dict(self)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


RESUMABLE_FIELDS = (
    "run.total_images", "run.log_every_images", "run.eval_every_images", "run.ckpt_every_images",
    "run.keep_checkpoints", "run.tensorboard", "run.sample_images", "run.run_dir", "run.dist_timeout_minutes",
    "data.num_workers", "data.val", "data.val_limit", "data.shards", "run.kernels", "run.zero_bucket_elements",
    "run.channels_last", "run.compile", "run.cudnn_benchmark", "data.pin_memory",
    "data.read_timeout", "data.min_rate", "data.rate_window", "data.verify_sha256", "data.trust_manifest_locations",
)
"""Changing these does not change the optimisation, so a run directory may be resumed with new values."""

LATER_FIELDS = {"objective.alpha_decay_start_images": 0, "objective.alpha_decay_images": 0}
"""Fields added after runs were made: left out of a config's identity while at these defaults (which train exactly
as before they existed), so those runs keep their hash and study caches stay valid."""


def identity_dict(cfg: TrainConfig, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config as a dict without the resumable fields (except `keep`) and the later fields at their defaults."""
    d = cfg.to_dict()
    for k in RESUMABLE_FIELDS:
        if k not in keep:
            sec, key = k.split(".")
            d[sec].pop(key, None)
    for k, default in LATER_FIELDS.items():
        sec, key = k.split(".")
        if d[sec].get(key) == default:
            d[sec].pop(key)
    return d


# ---- building from YAML + overrides -------------------------------------------------------------------------------
def load_config(name_or_path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Load a YAML config (a path, or a name in daa/configs/), apply `a.b=value` overrides, validate."""
    data: dict[str, Any] = {}
    if name_or_path:
        path = Path(name_or_path)
        if not path.exists() and not path.suffix:
            path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
            raise ConfigError(f"config {name_or_path!r} not found (a YAML path, or one of: {known})")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
        # a str field keeps the text as typed (YAML would read data.value_range=01 as the integer 1)
        node[parts[-1]] = value.strip() if _is_str_field(parts) else (yaml.safe_load(value) if value.strip() else "")
    return from_dict(TrainConfig, data).validate()


def _is_str_field(parts: list[str]) -> bool:
    """Whether section.key names a field annotated plain `str` in TrainConfig (`str | None` fields still read
    `null` as None through YAML)."""
    tp: Any = TrainConfig
    for p in parts:
        if not dataclasses.is_dataclass(tp):
            return False
        tp = typing.get_type_hints(tp).get(p)
    return tp is str


def from_dict(cls, data: Any, where: str = ""):
    """Build dataclass `cls` from a nested dict, coercing scalars to the annotated types; unknown keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key {_join(where, unknown[0])!r}; valid keys"
                          f"{' in ' + where if where else ''}: {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            num = float(value) if isinstance(value, str) else value
            if tp is int:
                if float(num) != int(float(num)):
                    raise ValueError
                return int(float(num))
            return float(num)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {'an integer' if tp is int else 'a number'}, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


# ---- DeepSpeed ----------------------------------------------------------------------------------------------------
def deepspeed_config(cfg: TrainConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed JSON for this run; train_batch = micro × accum × world is checked here and by DeepSpeed."""
    r = cfg.run
    accum = cfg.grad_accum(world_size)
    ds: dict[str, Any] = {
        "train_batch_size": r.global_batch,
        "train_micro_batch_size_per_gpu": r.micro_batch,
        "gradient_accumulation_steps": accum,
        "zero_optimization": {"stage": r.zero_stage},
        "bf16": {"enabled": r.precision == "bf16"},
        "fp16": {"enabled": r.precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if r.zero_stage in (1, 2):
        ds["zero_optimization"].update(reduce_bucket_size=r.zero_bucket_elements,
                                       allgather_bucket_size=r.zero_bucket_elements)
    elif r.zero_stage == 3:
        ds["zero_optimization"].update(reduce_bucket_size=r.zero_bucket_elements,
                                       stage3_prefetch_bucket_size=r.zero_bucket_elements)
    if r.precision == "bf16" and r.zero_stage > 0:
        # bf16 gradient accumulation loses small updates; DeepSpeed supports fp32 accumulation only with ZeRO >= 1
        ds["data_types"] = {"grad_accum_dtype": "fp32"}
    if cfg.optim.grad_clip > 0:
        ds["gradient_clipping"] = cfg.optim.grad_clip
    return ds


def dump_yaml(cfg: TrainConfig) -> str:
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False)
