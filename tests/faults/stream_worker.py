"""Read batches from a TrainStream in its own process and report as it goes (the remote-shard cases):

    python stream_worker.py '{"shards": LOCATION, "batches": N, "cfg": {StreamConfig fields}}'

Prints one JSON line per batch — {"batches", "seconds", "stats", "digest", "peak_threads", "error"} — so a case that
kills it at its time bound still sees how far it got. `digest` hashes every tensor and sample key of the batches so
far (two readers that yield the same batches print the same digest). DAA_CODE=DIR reads the code from DIR (default:
this checkout), so the same worker can measure another revision."""
import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.environ.get("DAA_CODE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from data_shards.stream import StreamConfig, TrainStream  # noqa: E402

args = json.loads(sys.argv[1])
base = dict(patch_size=16, batch_size=8, num_workers=0, shuffle_buffer=4, return_keys=True)
t0 = time.time()
h, n, peak, stream = hashlib.sha256(), 0, threading.active_count(), None


def report(error=None):
    print(json.dumps({"batches": n, "seconds": round(time.time() - t0, 2), "digest": h.hexdigest()[:16],
                      "stats": dict(stream.stats) if stream else {}, "peak_threads": peak, "error": error}),
          flush=True)


try:
    stream = TrainStream(StreamConfig(args["shards"], **{**base, **args.get("cfg", {})}))
    for b in stream:
        for k in ("x_s", "y_s", "x_r"):
            h.update(b[k].numpy().tobytes())
        h.update(json.dumps(b["keys"], sort_keys=True).encode())
        n += 1
        peak = max(peak, threading.active_count())
        report()
        if n >= args["batches"]:
            break
except Exception as e:  # noqa: BLE001 - reported as the one line a user would see
    report(f"{type(e).__name__}: {e}")
    sys.exit(1)
