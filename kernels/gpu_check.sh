#!/usr/bin/env bash
# GPU check of the fused condition builder: native (no interpreter) tests, the target benchmark, then the full sweep
# if the time cap allows.
#
#   OUT=/some/dir bash kernels/gpu_check.sh        # from the repo root; OUT defaults to ./gpu_check_out
#
# Needs torch + triton + pytest already installed (no network; the carried wheels of `make gpu-wheels` are installed
# when .whl/ is there, though these steps need none of them). The whole script is capped at
# GPU_CHECK_CAP_S seconds (default 240): each step runs under `timeout` with at most what is left, the full sweep only
# if >= 60 s are left (cut at the cap, its rows so far are kept). Writes to $OUT (5 files, nothing else):
#   env.txt            device, driver, torch/triton versions, per-step seconds and exit codes, the final rc
#   pytest.log         python -m pytest -q of the kernel tests (conditions incl. the no-host-sync and profiler tests,
#                      and the fused GroupNorm + SiLU)
#   bench.log          stdout/stderr of `launch.bench.kernels --target`, then of the full sweep
#   kernels_gpu.md     markdown: the --target report (table, verdict, launch-config sweep), the full sweep appended
#   kernels_gpu.csv    the rows of both runs (columns of docs/benchmarks/kernels.csv + dev_* device-time columns)
# Estimated (not yet timed) on an H100/H200: env 5 s, tests ~25 s, --target ~45 s (torch.compile of the reference:
# one dynamic compile per dtype), full sweep ~2 min (the previous wall-only sweep took 85 s; recompiles hit the
# on-disk caches). env.txt records the real per-step seconds.
set -u -o pipefail
cd "$(dirname "$0")/.."
CAP_DEFAULT=240
. kernels/gpu_check_common.sh  # OUT, PY, CAP and the step helpers left / cap / log

prepare || true  # the carried wheels (make gpu-wheels) when .whl/ is there; these steps need none of them

rc=0
echo "== pytest (native Triton) =="
t=$SECONDS
timeout -k 5 "$(cap 90)" "$PY" -m pytest -q -p no:cacheprovider "${KERNEL_TESTS[@]}" 2>&1 \
  | tee "$OUT/pytest.log"
s=$?
[ $s -ne 0 ] && rc=$((rc | 1))
log "step pytest: $((SECONDS - t)) s, exit $s"

echo "== benchmark --target (B=32 256x256 bf16+fp32, wall + device time, verdict) =="
t=$SECONDS
timeout -k 5 "$(cap 150)" "$PY" -m launch.bench.kernels --target --csv "$OUT/kernels_gpu.csv" --out "$OUT/kernels_gpu.md" \
  2>&1 | tee "$OUT/bench.log"
s=$?
[ $s -ne 0 ] && rc=$((rc | 2))
log "step bench --target: $((SECONDS - t)) s, exit $s"

if [ "$(left)" -ge 60 ]; then
  echo "== benchmark, full sweep (cut at the cap: $(($(left) - 5)) s) =="
  t=$SECONDS
  timeout -k 5 "$(($(left) - 5))" "$PY" -m launch.bench.kernels --csv "$OUT/kernels_gpu.csv" --out "$OUT/kernels_gpu.md" \
    --append-out 2>&1 | tee -a "$OUT/bench.log"
  s=$?
  if [ $s -eq 124 ] || [ $s -eq 137 ]; then
    log "step bench sweep: $((SECONDS - t)) s, cut at the time cap (rows so far kept)"
  else
    [ $s -ne 0 ] && rc=$((rc | 4))
    log "step bench sweep: $((SECONDS - t)) s, exit $s"
  fi
else
  log "step bench sweep: skipped, only $(left) s left of the ${CAP} s cap"
fi

log "gpu_check rc=$rc in $((SECONDS - T0)) s (bits: 1 tests failed, 2 bench --target failed, 4 sweep failed)"
exit $rc
