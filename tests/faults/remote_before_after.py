"""docs/RELIABILITY.md's remote-data table, before/after: the remote-data cases' measurements run against another
revision of the code (each with a hard time bound) and against this checkout, on the same shards.

    git archive 11d6600 | tar -x -C /tmp/old && python tests/faults/remote_before_after.py --old /tmp/old
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases_remote as C  # noqa: E402
from faultlib import PY, Ctx  # noqa: E402

PIPE_READ = r"""
import os, sys, threading, time
sys.path.insert(0, os.environ["DAA_CODE"])
from data_shards import urls
started = [0]
orig = threading.Thread.start
def start(self):
    started[0] += 1
    return orig(self)
threading.Thread.start = start
path = sys.argv[1]
t = time.perf_counter()
if sys.argv[2] == "raw":
    import subprocess
    p = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)
    while p.stdout.read(10240):
        pass
    p.wait()
else:
    with urls.open_url("pipe:cat " + path, 30.0) as f:
        while f.read(10240):
            pass
print(started[0], time.perf_counter() - t)
"""


def pipe_read(code: str, path: str, how: str, reps: int = 3) -> tuple[int, float]:
    """(threads started, best seconds) reading `path` through pipe:cat in 10 KiB reads (tarfile's read size)."""
    best, threads = float("inf"), 0
    for _ in range(reps):
        out = subprocess.run([PY, "-c", PIPE_READ, path, how], env={**os.environ, "DAA_CODE": code},
                             capture_output=True, text=True, timeout=120).stdout.split()
        threads, best = int(out[0]), min(best, float(out[1]))
    return threads, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="a checkout of the revision to compare with")
    ap.add_argument("--defaults", action="store_true", help="also the trickle with every default (≈ 2 min)")
    args = ap.parse_args()
    new = str(Path(__file__).resolve().parents[2])
    ctx = Ctx(Path(tempfile.mkdtemp(prefix="daa_remote_")), False, 0)
    shards = C.remote_shards(ctx)
    rows = []

    def row(case, old, new_):
        rows.append((case, old, new_))
        print(f"| {case} | {old} | {new_} |", flush=True)

    def brief(r, *keys):
        st = ", ".join(f"{k}={r['stats'].get(k, 0)}" for k in keys)
        return (f"{r['batches']} batches in {r['wall']} s{' (killed at the bound)' if r['timed_out'] else ''}"
                f"{'; ' + st if st else ''}{'; error: ' + r['error'][:90] if r.get('error') else ''}")

    print("| case | before | after |\n|---|---|---|")
    a = C.measure_trickle(shards, {"read_timeout": 3}, 120, args.old)
    b = C.measure_trickle(shards, C.TRICKLE_CFG, 120)
    row("trickle 100 B/s, read_timeout 3 s, 6 batches (after: rate_window 2 s)", brief(a),
        brief(b, "slow_shards", "read_retries"))
    if args.defaults:
        b = C.measure_trickle(shards, {"read_timeout": 3}, 400)
        row("trickle 100 B/s, read_timeout 3 s, every other field default", brief(a),
            brief(b, "slow_shards", "read_retries"))
    for ranges, drops in ((True, 2), (False, 1)):
        a, b = (C.measure_range(shards, ranges, drops, code) for code in (args.old, None))
        f = lambda r: f"{r['sent'] / r['size']:.2f}× the shard fetched; {brief(r, 'read_retries')}"  # noqa: E731
        row(f"{drops} transfer(s) cut half-way, server {'honours' if ranges else 'ignores'} Range", f(a), f(b))
    man = C.hostile_manifest(shards, ctx.tmp / "FLAG_a", ctx.tmp / "hostile_a.json")
    a = C.measure_hostile(shards, ctx.tmp / "FLAG_a", man, None, args.old)
    man = C.hostile_manifest(shards, ctx.tmp / "FLAG_b", ctx.tmp / "hostile_b.json")
    b = C.measure_hostile(shards, ctx.tmp / "FLAG_b", man, None)
    row("manifest over HTTP with `pipe:touch FLAG; cat …` entries", f"FLAG created: {a['flag']}; {brief(a)}",
        f"FLAG created: {b['flag']}; {brief(b)}")
    a = C.measure_pipe_hang(shards, 150, args.old)
    b = C.measure_pipe_hang(shards, 150)
    g = lambda r: f"{brief(r, 'unreachable_shards')}; `sleep` left running: {r['leftover']}"  # noqa: E731
    row("`pipe:` hung compound command (`sleep 30` for one shard), read_timeout 1 s, 6 batches", g(a), g(b))
    big = ctx.tmp / "big.bin"
    big.write_bytes(os.urandom(50 << 20))
    raw = pipe_read(new, str(big), "raw")[1]
    (ta, sa), (tb, sb) = pipe_read(args.old, str(big), "guarded"), pipe_read(new, str(big), "guarded")
    row(f"50 MB through `pipe:cat` in 10 KiB reads (unguarded: {raw * 1e3:.0f} ms)",
        f"{ta} threads started, {sa * 1e3:.0f} ms", f"{tb} threads started, {sb * 1e3:.0f} ms")
    print(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
