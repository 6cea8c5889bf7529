"""One rank of an elastic-resume case (the reliability suite): trains, or resumes on however many ranks it is started
with, and dumps the full optimizer state so the case can compare it across world sizes.

    torchrun --nproc_per_node N elastic_worker.py train:IMAGES|resume NAME CONFIG_OVERRIDES...

The data is one global sequence of micro-batches, dealt out so that the micro-batches of optimizer step s are the
same whatever the world size and grad_accum (rank r's i-th micro-batch of step s is global micro-batch
s·G + i·W + r, G = W·accum): a run resumed on another number of ranks trains on exactly the batches an
uninterrupted run would have. `train:IMAGES` trains to run.total_images and writes NAME.pt right after the
checkpoint at IMAGES images (the state that checkpoint holds); `resume` writes NAME.pt right after loading (none for
NAME -), then trains to run.total_images.
Each NAME.pt holds, per parameter, the full fp32 master weight and Adam exp_avg / exp_avg_sq (gathered with
DeepSpeed's safe_get_full_* under ZeRO, read directly without it), and the EMA state."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import torch  # noqa: E402

from daa.config import load_config  # noqa: E402
from daa.training.trainer import Trainer  # noqa: E402
from data_shards.synthetic import SyntheticStream  # noqa: E402

mode, name, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = load_config("demo", overrides)
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class GlobalOrder:
    """Rank `rank`'s share of one global micro-batch sequence (see the module docstring)."""

    def __init__(self):
        self.src = SyntheticStream(cfg.run.micro_batch, cfg.data.patch_size, cfg.run.seed, 0)
        self.accum = cfg.grad_accum(world)
        self.consumed = 0  # this rank's micro-batches

    def _index(self, c: int) -> int:
        return (c // self.accum) * world * self.accum + (c % self.accum) * world + rank

    def __iter__(self):
        while True:
            c = self.consumed
            self.consumed += 1
            yield self.src.batch(self._index(c))

    def state_dict(self):
        return {"global": self.consumed * world}  # at a step boundary every rank has consumed as many

    def load_state_dict(self, s):
        self.consumed = s["global"] // world

    def load_resharded(self, states):
        self.load_state_dict(states[0])


def full_state(t: Trainer) -> dict:
    import deepspeed.utils as du

    out = {}
    opt = t.engine.optimizer
    for n, p in t.engine.module.named_parameters():
        if cfg.run.zero_stage == 0:
            st = opt.state[p]
            out[n] = (p.detach().float().clone(), st["exp_avg"].clone(), st["exp_avg_sq"].clone())
        else:  # collective under ZeRO-3: every rank calls it
            out[n] = tuple(x.detach().float().clone() for x in (du.safe_get_full_fp32_param(p),
                                                                du.safe_get_full_optimizer_state(p, "exp_avg"),
                                                                du.safe_get_full_optimizer_state(p, "exp_avg_sq")))
    return {"params": out, "ema": {k: v.clone() for k, v in t.ema.module.state_dict().items()},
            "images_seen": t.images_seen, "micro_step": t.micro_step, "accum": t.accum, "world": world,
            "global_steps": t.engine.global_steps}


t = Trainer(cfg, stream=GlobalOrder(), valset=None)
state = None
if mode.startswith("train:"):
    save, at = t.save_checkpoint, int(mode.split(":")[1])

    def save_and_dump():
        global state
        tag = save()
        if t.images_seen == at:
            state = full_state(t)
        return tag

    t.save_checkpoint = save_and_dump
    t.fit()
else:  # NAME "-": no dump (DeepSpeed links the optimizer-state fragments read by safe_get_full_optimizer_state
    # when loading a universal checkpoint or at the first step, not when loading its own format)
    state = full_state(t) if name != "-" else None
    t.fit()
if rank == 0 and state is not None:
    torch.save(state, os.path.join(cfg.run.run_dir, f"{name}.pt"))
t.close()
