#!/usr/bin/env bash
# Every GPU figure of issues #3 and #13 in one short device slot (≤ 8 min on an H200), from the repo root:
#
#   OUT=/some/dir bash launch/bench/gpu_check.sh
#
# 1. kernels/gpu_check.sh (native Triton tests + the fused-kernel benchmark), capped at 150 s;
# 2. the training step, paper sizes, B=24 and 8 (launch/bench/step.py): the faithful official fp32 step (timed in
#    the cudnn.benchmark phase, as its configs run), the bare objective, and the Trainer in fp32 and bf16 (ZeRO-2);
# 3. the same at B=24 with every lever on for the trainer (regional compile, channels_last, GroupNorm without the
#    fp32 round trip, cudnn.benchmark), against the official step in the same process;
# 4. a GPU profile of one trainer step by kernel category, without and with the levers (launch/bench/profile_gpu.py).
# Needs torch + triton + pytest + deepspeed installed (installs nothing, no network). Each step runs under `timeout`
# with at most what is left of GPU_CHECK_CAP_S (default 470 s). Writes to $OUT: env.txt (devices, versions, per-step
# seconds and exit codes), the kernel check's files, step_gpu.csv + step.log, step_levers.log, profile*.md/json.
set -u -o pipefail
cd "$(dirname "$0")/../.."
CAP_DEFAULT=470
. kernels/gpu_check_common.sh  # OUT, PY, CAP and the step helpers left / cap / log
LEVERS=(--trainer-set run.compile=blocks --trainer-set run.channels_last=true --trainer-set run.cudnn_benchmark=true
        --trainer-set "model.diffusion_args={norm: native}")
rc=0

t=$SECONDS
OUT="$OUT/kernels" GPU_CHECK_CAP_S="$(cap 150)" bash kernels/gpu_check.sh > "$OUT/kernels.log" 2>&1
s=$?; [ $s -ne 0 ] && rc=$((rc | 1)); cat "$OUT/kernels/env.txt" >> "$OUT/env.txt" 2>/dev/null
log "step kernels: $((SECONDS - t)) s, exit $s"

t=$SECONDS
timeout -k 5 "$(cap 170)" "$PY" launch/bench/step.py --csv "$OUT/step_gpu.csv" --budget-s 130 --max-wall-s 160 \
  2>&1 | tee "$OUT/step.log"
s=$?; [ $s -ne 0 ] && rc=$((rc | 2))
log "step bench (B=24,8): $((SECONDS - t)) s, exit $s"

t=$SECONDS
timeout -k 5 "$(cap 110)" "$PY" launch/bench/step.py --csv "$OUT/step_gpu.csv" --batch 24 --phases cudnn.benchmark \
  --variants official-fp32,trainer-bf16 --budget-s 80 --max-wall-s 100 "${LEVERS[@]}" 2>&1 | tee "$OUT/step_levers.log"
s=$?; [ $s -ne 0 ] && rc=$((rc | 4))
log "step bench, levers: $((SECONDS - t)) s, exit $s"

for name in profile profile_levers; do
  [ "$(left)" -lt 25 ] && { log "step $name: skipped, $(left) s left"; continue; }
  t=$SECONDS
  extra=(); [ $name = profile_levers ] && extra=("${LEVERS[@]}")
  timeout -k 5 "$(cap 60)" "$PY" launch/bench/profile_gpu.py --out "$OUT/$name" "${extra[@]}" > "$OUT/$name.log" 2>&1
  s=$?; [ $s -ne 0 ] && rc=$((rc | 8))
  log "step $name: $((SECONDS - t)) s, exit $s"
done

log "gpu_check rc=$rc in $((SECONDS - T0)) s (bits: 1 kernels, 2 step bench, 4 levers bench, 8 profile)"
exit $rc
