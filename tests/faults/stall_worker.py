"""One rank of a 2-rank run (started as srun starts ranks) whose rank 1 stops making progress outside any
collective — its data stream blocks forever at micro-step STEP, as a hung file system read would:

    RANK=r WORLD_SIZE=2 ... python stall_worker.py STEP CONFIG_OVERRIDES...

Rank 0 then waits in a collective (its timeout ends it); rank 1 waits in no collective at all, so only the trainer's
stall watchdog can end it."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from daa.config import load_config  # noqa: E402
from daa.train import _known_failure  # noqa: E402
from daa.training import trainer as T  # noqa: E402
from data_shards.synthetic import SyntheticStream  # noqa: E402

step, overrides = int(sys.argv[1]), sys.argv[2:]
cfg = load_config("demo", overrides)
rank = int(os.environ.get("RANK", 0))


class Stall(SyntheticStream):
    def __iter__(self):
        for i, b in enumerate(super().__iter__()):
            if rank == 1 and i == step:
                print(f"stall_worker: rank 1 blocks at micro-step {i}", file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)
            yield b


try:
    t = T.Trainer(cfg, stream=Stall(cfg.run.micro_batch, cfg.data.patch_size, cfg.run.seed, rank), valset=None)
    t.fit()
except Exception as e:  # noqa: BLE001 - as daa-train reports it
    msg = _known_failure(e, cfg, in_fit=True)
    if msg is None:
        raise
    print(f"error: {msg}", file=sys.stderr, flush=True)
    os._exit(3)
os._exit(0)
