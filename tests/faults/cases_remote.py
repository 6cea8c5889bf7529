"""The reliability suite: shards from servers and commands that misbehave (a trickle, a dropped transfer, a manifest
that names commands, a pipe: command that hangs). Each case reads a TrainStream in a subprocess (stream_worker.py)
with a hard time bound; `measure_*` return the observations, so the same measurement can be run against another
revision of the code (DAA_CODE=DIR; docs/RELIABILITY.md's before/after table)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cases_data import write_shards
from faultlib import PY, Ctx, Row, _env, error_lines, run, train_cmd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import shard_server  # noqa: E402

WORKER = str(Path(__file__).with_name("stream_worker.py"))


def worker(shards: str, batches: int, cfg: dict, bound: float, code: str | None = None) -> dict:
    """The worker's last report; on the time bound, its last report then (`timed_out`: True)."""
    env = _env(**({"DAA_CODE": code} if code else {}))
    spec = json.dumps({"shards": shards, "batches": batches, "cfg": cfg})
    t0 = time.time()
    try:
        p = subprocess.run([PY, WORKER, spec], env=env, capture_output=True, text=True, timeout=bound)
        out, timed_out = p.stdout, False
    except subprocess.TimeoutExpired as e:
        out, timed_out = (e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout) or "", True
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    last = lines[-1] if lines else {"batches": 0, "stats": {}, "error": None, "digest": None}
    return {**last, "timed_out": timed_out, "wall": round(time.time() - t0, 1)}


def remote_shards(ctx: Ctx) -> Path:
    """One small shard set (4 shards of 12 samples per stream) shared by these cases: none of them modifies it."""
    out = ctx.tmp / "shards_remote"
    return out if (out / "manifest.json").is_file() else write_shards(ctx, "shards_remote")


def _files(shards: Path, stream: str) -> list[str]:
    man = json.loads((shards / "manifest.json").read_text())
    return [s["file"] for s in man["streams"][stream]["shards"]]


def _leftover(marker: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "stream_worker" not in cmd:
            out.append(int(pid))
    return out


# ---- a shard trickling at 100 B/s ----------------------------------------------------------------------------------
TRICKLE_CFG = {"read_timeout": 3, "rate_window": 2}  # min_rate: the default (64 KiB/s)


def measure_trickle(shards: Path, cfg: dict, bound: float, code: str | None = None) -> dict:
    srv = shard_server.start(str(shards))
    try:
        srv.trickle[_files(shards, "real")[1]] = 100
        return worker(srv.url, 6, cfg, bound, code)
    finally:
        srv.shutdown()


def case_trickle(ctx: Ctx) -> Row:
    shards = remote_shards(ctx)
    r = measure_trickle(shards, TRICKLE_CFG, 120)
    slow = r["stats"].get("slow_shards", 0)
    held = not r["timed_out"] and r["batches"] == 6 and slow >= 1 and r["seconds"] < 90
    return Row("remote data: a shard trickling at 100 B/s",
               "TrainStream over HTTP (read_timeout=3, rate_window=2, min_rate default 64 KiB/s, batch 8, 0 "
               "workers); real-000001.tar sent at 100 B/s, 6 batches asked",
               "the slow shard is given up after its attempts, skipped and counted (slow_shards); all batches come",
               f"{r['batches']} batches in {r['seconds']} s, slow_shards={slow}, read_retries="
               f"{r['stats'].get('read_retries', 0)}{' (timed out)' if r['timed_out'] else ''}", held)


# ---- a transfer dropped mid-shard: Range resume, and a server that ignores Range -------------------------------------
def measure_range(shards: Path, ranges: bool, drops: int, code: str | None = None) -> dict:
    name = _files(shards, "syn")[0]
    srv = shard_server.start(str(shards))
    try:
        srv.ranges = ranges
        srv.drop[name] = drops
        r = worker(srv.url, 6, {"read_timeout": 10}, 120, code)  # 6 batches of 8: one epoch, each shard once
        r["sent"], r["size"] = srv.sent.get(name, 0), (shards / name).stat().st_size
        return r
    finally:
        srv.shutdown()


def case_range(ctx: Ctx) -> list[Row]:
    shards = remote_shards(ctx)
    disk = worker(str(shards), 6, {}, 120)
    rows = []
    for ranges, drops, expect in ((True, 2, 1.0), (False, 1, 1.5)):
        r = measure_range(shards, ranges, drops)
        ratio = r["sent"] / r["size"]
        held = (r["digest"] == disk["digest"] and r["batches"] == 6 and abs(ratio - expect) < 0.02
                and r["stats"].get("read_retries", 0) == drops)
        what = "answers Range (206)" if ranges else "ignores Range (answers 200 with the whole file)"
        rows.append(Row(f"remote data: transfer dropped mid-shard, server {what}",
                        f"HTTP; the first {drops} transfer(s) of syn-000000.tar cut half-way; one epoch (6 batches)",
                        f"the same batches as from disk; bytes fetched {expect:g}× the shard "
                        f"({'resumed at the byte it broke' if ranges else 're-read, the delivered bytes skipped'})",
                        f"same batches: {r['digest'] == disk['digest']}; fetched {r['sent']} of {r['size']} bytes "
                        f"({ratio:.2f}×); read_retries={r['stats'].get('read_retries', 0)}", held))
    return rows


# ---- a manifest served over HTTP whose shard entries are shell commands --------------------------------------------
def hostile_manifest(shards: Path, flag: Path, dest: Path) -> Path:
    man = json.loads((shards / "manifest.json").read_text())
    for info in man["streams"].values():
        for sh in info["shards"]:
            sh["file"] = f"pipe:touch {flag}; cat {shards}/{sh['file']}"
    dest.write_text(json.dumps(man))
    return dest


def measure_hostile(shards: Path, flag: Path, manifest: Path, trust: bool | None, code: str | None = None) -> dict:
    srv = shard_server.start(str(shards))
    try:
        srv.files["manifest.json"] = str(manifest)
        r = worker(srv.url, 3, {} if trust is None else {"trust_manifest_locations": trust}, 60, code)
        r["flag"] = flag.exists()
        return r
    finally:
        srv.shutdown()


def case_hostile_manifest(ctx: Ctx) -> list[Row]:
    shards = remote_shards(ctx)
    flag = ctx.tmp / "hostile_FLAG"
    man = hostile_manifest(shards, flag, ctx.tmp / "hostile_manifest.json")
    srv = shard_server.start(str(shards))
    try:
        srv.files["manifest.json"] = str(man)
        d = ctx.tmp / "hostile_run"
        p = run(train_cmd(d, f"data.shards={srv.url}", "data.num_workers=1", "run.total_images=32", nproc=1))
    finally:
        srv.shutdown()
    errs = error_lines(p.stderr)
    rows = [Row("remote data: a manifest over HTTP names `pipe:touch FLAG; cat …`",
                "launch/train.py with data.shards=http://127.0.0.1 serving that manifest",
                "refused with one error line; the command never runs (no FLAG)",
                f"exit {p.returncode}: \"{errs[0][:150] if errs else p.stderr.strip()[-150:]}\"; FLAG created: "
                f"{flag.exists()}", p.returncode != 0 and len(errs) == 1 and not flag.exists())]
    r = measure_hostile(shards, flag, man, True)
    rows.append(Row("remote data: the same manifest, trust_manifest_locations=True",
                    "TrainStream with the user's opt-in (StreamConfig.trust_manifest_locations)",
                    "works: batches come (the user chose to run what the manifest names)",
                    f"{r['batches']} batches, FLAG created: {r['flag']}; error: {r['error']}",
                    r["batches"] == 3 and r["flag"] and not r["error"]))
    return rows


# ---- a compound pipe: command that hangs -----------------------------------------------------------------------------
SLEEP = "30.5371"  # a duration no other process on the box uses: finds what the command left running


def hung_pipe(shards: Path) -> str:
    return f"pipe:case {{}} in real-000001.tar) sleep {SLEEP};; esac; cat {shards}/{{}}"


def measure_pipe_hang(shards: Path, bound: float, code: str | None = None) -> dict:
    r = worker(hung_pipe(shards), 6, {"read_timeout": 1}, bound, code)
    time.sleep(0.5)
    left = _leftover(f"sleep {SLEEP}")
    r["leftover"] = len(left)
    for pid in left:  # never leave a measurement's sleepers behind
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return r


def case_pipe_hang(ctx: Ctx) -> Row:
    shards = remote_shards(ctx)
    r = measure_pipe_hang(shards, 120)
    gave_up = r["stats"].get("unreachable_shards", 0)
    held = (not r["timed_out"] and r["batches"] == 6 and gave_up >= 1 and r["seconds"] < 60 and r["leftover"] == 0
            and r["peak_threads"] <= 1)
    return Row("remote data: a compound pipe: command that hangs",
               "data.shards='pipe:case {} in real-000001.tar) sleep 30;; esac; cat DIR/{}', read_timeout=1 s, "
               "6 batches",
               "the whole process group killed at each deadline: given up after ≈ 4 × 1 s + back-off, skipped, "
               "counted; no `sleep` left running; no thread per read",
               f"{r['batches']} batches in {r['seconds']} s, unreachable_shards={gave_up}, processes left: "
               f"{r['leftover']}, peak Python threads: {r['peak_threads']}", held)
