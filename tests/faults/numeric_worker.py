"""A 2-rank training run with a numerical fault injected on rank 1 (the reliability suite's numeric cases):

    torchrun --nproc_per_node 2 numeric_worker.py batch_nan|batch_inf|loss_inf STEPS_JSON CONFIG_OVERRIDES...

Writes result<rank>.json into the run directory: how many steps were skipped, whether every tensor (weights, EMA
with its buffers, Adam state) stayed finite, and DeepSpeed's micro-step and optimizer-step counters."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import torch  # noqa: E402

from daa.config import load_config  # noqa: E402
from daa.training import trainer as T  # noqa: E402
from data_shards.synthetic import SyntheticStream  # noqa: E402

where, steps, overrides = sys.argv[1], set(json.loads(sys.argv[2])), sys.argv[3:]
cfg = load_config("demo", overrides)
rank = int(os.environ.get("RANK", 0))


class Inject(SyntheticStream):
    def batch(self, index):  # by the stream's absolute batch index: a resumed run meets the same faulty batch
        b = super().batch(index)
        if where in ("batch_nan", "batch_inf") and rank == 1 and index in steps:
            b["x_s"][0, 0, 0, 0] = float("nan") if where == "batch_nan" else float("inf")
        return b


if where == "loss_inf":
    orig, n = T.DAAObjective.forward, [0]

    def forward(self, *a, **k):
        out = orig(self, *a, **k)
        if rank == 1 and n[0] in steps:
            out["loss"] = out["loss"] * float("inf")
        n[0] += 1
        return out

    T.DAAObjective.forward = forward

t = T.Trainer(cfg, stream=Inject(cfg.run.micro_batch, cfg.data.patch_size, cfg.run.seed, rank), valset=None)
t.fit()
opt = t.engine.optimizer
finite = all(bool(torch.isfinite(v).all()) for st in getattr(opt, "optimizer", opt).state.values()
             for v in st.values() if torch.is_tensor(v))
finite &= all(bool(torch.isfinite(p).all()) for p in t.engine.module.parameters())
finite &= all(bool(torch.isfinite(v).all()) for v in t.ema.module.state_dict().values() if v.is_floating_point())
with open(os.path.join(cfg.run.run_dir, f"result{rank}.json"), "w") as f:
    json.dump({"rank": rank, "skipped": t.skipped_steps, "finite": finite, "accum": t.accum,
               "ds_micro_steps": t.engine.micro_steps, "ds_global_steps": t.engine.global_steps}, f)
t.close()
