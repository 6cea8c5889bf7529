"""The shard reader of two revisions side by side, from disk and over HTTP: `python launch/bench/loader_ab.py --old DIR`
(DIR = another checkout, e.g. `git archive 11d6600 | tar -x -C /tmp/old`; appends to
docs/benchmarks/data_loader_ab.csv).

Same shards (the 512² tiles of launch/bench/loader.py, denoise layout), same `python -m http.server` on 127.0.0.1,
one `TrainStream(num_workers=0)` per measurement in a fresh process, arms interleaved round by round (in reverse
order every other round) and medians reported. Two rates per arm: samples per wall second, and samples per CPU second
of the reader process — the second is what a reader's code costs, and stays meaningful on a shared, loaded box where
wall time mostly measures the other jobs. Arms: `old`, `new` (this checkout, defaults) and `new_nosha`
(verify_sha256=False)."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from data_shards import write  # noqa: E402
from launch.bench import loader as L  # noqa: E402
from launch.harness import CsvLog, git_sha  # noqa: E402

CSV = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "benchmarks", "data_loader_ab.csv")
FIELDS = ["timestamp", "host", "git_sha", "old", "rounds", "arm", "where", "wall_sps", "cpu_sps", "cpu_over_old",
          "wall_over_old", "note"]
MEASURE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from data_shards.stream import StreamConfig, TrainStream
kw = {"verify_sha256": False} if sys.argv[3] == "nosha" else {}
it = iter(TrainStream(StreamConfig(sys.argv[2], patch_size=128, batch_size=16, num_workers=0, **kw)))
for _ in range(2):
    next(it)
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(12):
    next(it)
print(json.dumps([192 / (time.perf_counter() - t0), 192 / (time.process_time() - c0)]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="a checkout of the revision to compare with")
    ap.add_argument("--old-label", default=None, help="what --old is (e.g. its git sha) for the CSV")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--csv", default=CSV, help="append results here ('' = do not write)")
    args = ap.parse_args()
    new = str(Path(__file__).resolve().parents[2])
    arms = [("old", args.old, "-"), ("new", new, "-"), ("new_nosha", new, "nosha")]
    work = tempfile.mkdtemp(prefix="daa-ab-")
    L.make_folders(os.path.join(work, "files"), 512)
    out = os.path.join(work, "shards")
    if write.main(["--task", "denoise", "--gt", os.path.join(work, "files", "gt"), "--real",
                   os.path.join(work, "files", "real"), "--syn-on-the-fly", "--out", out, "-q"]) != 0:
        return 1
    srv, url = L.serve(out)
    res: dict = {(a, w): [] for a, _, _ in arms for w in ("disk", "http")}
    try:
        for r in range(args.rounds):
            for arm, tree, flag in arms if r % 2 == 0 else arms[::-1]:
                for where, loc in (("disk", out), ("http", url)):
                    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
                    p = subprocess.run([sys.executable, "-c", MEASURE, tree, loc, flag], env=env, capture_output=True,
                                       text=True, timeout=600)
                    if p.returncode != 0:
                        print(f"error: {arm} {where}: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                        return 1
                    res[(arm, where)].append(json.loads(p.stdout.strip().splitlines()[-1]))
                    print(f"round {r} {arm:>9} {where}: {res[(arm, where)][-1][0]:6.1f} sps wall, "
                          f"{res[(arm, where)][-1][1]:6.1f} per CPU-s", flush=True)
    finally:
        srv.terminate()
        srv.wait()
    med = {k: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs)) for k, vs in res.items()}
    rows = []
    print(f"\n{'arm':>9} {'where':>5} {'wall sps':>9} {'CPU sps':>8} {'CPU/old':>8} {'wall/old':>9}")
    for (arm, where), (wall, cpu) in med.items():
        o = med[("old", where)]
        rows.append({"arm": arm, "where": where, "wall_sps": f"{wall:.1f}", "cpu_sps": f"{cpu:.1f}",
                     "cpu_over_old": f"{cpu / o[1]:.3f}", "wall_over_old": f"{wall / o[0]:.3f}"})
        print(f"{arm:>9} {where:>5} {wall:9.1f} {cpu:8.1f} {cpu / o[1]:7.3f}x {wall / o[0]:8.3f}x")
    if args.csv:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        load, old = os.getloadavg()[0], args.old_label or os.path.basename(args.old.rstrip("/"))
        n = CsvLog(args.csv, FIELDS).append({"timestamp": now, "host": socket.gethostname(), "git_sha": git_sha(),
                                             "old": old, "rounds": args.rounds,
                                             "note": f"medians; load average {load:.1f} at the end", **r}
                                            for r in rows)
        print(f"appended {n} rows to {os.path.normpath(args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
