#!/usr/bin/env bash
# Every missing GPU figure (step, profile, levers, fused op) in one short device slot (≤ 8 min on an H200), from the repo root:
#
#   OUT=/some/dir bash launch/bench/gpu_check.sh
#
# In order of what the issue needs most (a step that runs out of time gets what is left, later ones are skipped):
# 1. env + the native Triton kernel tests (the condition builder, the noise MSE, the fused GroupNorm + SiLU);
# 2. the training step, paper sizes, B=24 and 8 (launch/bench/step.py): the faithful official fp32 step (timed in
#    the cudnn.benchmark phase, as its configs run), the bare objective, and the Trainer in fp32 and bf16 (ZeRO-2);
# 3. B=24, the trainer (bf16) with the fused GroupNorm + scale/shift + SiLU and cudnn.benchmark, against the
#    official step in the same process;
# 4. the same with regional torch.compile, channels_last and the native GroupNorm instead of the fused op (compile
#    can fuse these chains itself; the levers set of the previous version of this script);
# 5. a GPU profile of one trainer step by kernel category, plain and with the levers of 3 (profile_gpu.py);
# 6. the fused op's microbenchmark per U-Net level (python -m launch.bench.kernels.group_norm_silu).
# The condition builder's own benchmark is `kernels/gpu_check.sh`; its figures are in docs/benchmarks.
# Needs torch + triton + pytest (the device image has them); what the image lacks (deepspeed, webdataset, pydantic,
# ...) it installs from the carried wheels: run `make gpu-wheels` here first and carry .whl (no network is used).
# Each step runs under `timeout` with at most what is left of GPU_CHECK_CAP_S (default 470 s). Writes to $OUT: env.txt (devices, versions, per-step
# seconds and exit codes), pytest.log, step_gpu.csv + step.log, step_fused.log, step_compile.log, profile*.md/json,
# group_norm_silu.csv + .log.
set -u -o pipefail
cd "$(dirname "$0")/../.."
CAP_DEFAULT=470
. kernels/gpu_check_common.sh  # OUT, PY, CAP, KERNEL_TESTS and the helpers env_info / left / cap / log
# the fused op reads NCHW groups contiguously (NHWC works, strided), so its set keeps the default layout
FUSED=(--trainer-set run.cudnn_benchmark=true --trainer-set "model.diffusion_args={norm: fused}")
COMPILED=(--trainer-set run.cudnn_benchmark=true --trainer-set run.channels_last=true --trainer-set run.compile=blocks
          --trainer-set "model.diffusion_args={norm: native}")
rc=0
prepare || rc=64  # installs the carried wheels (make gpu-wheels) when .whl/ is there

run() {  # run NAME BIT SECONDS CMD...: one step under the time left, its exit code into rc's BIT
  local name=$1 bit=$2 want=$3 t=$SECONDS s
  shift 3
  if [ "$(left)" -lt 20 ]; then log "step $name: skipped, $(left) s left"; return; fi
  timeout -k 5 "$(cap "$want")" "$@" > "$OUT/$name.log" 2>&1
  s=$?
  [ $s -ne 0 ] && rc=$((rc | bit))
  tail -n 25 "$OUT/$name.log"
  log "step $name: $((SECONDS - t)) s, exit $s"
}

run pytest 1 60 "$PY" -m pytest -q -p no:cacheprovider "${KERNEL_TESTS[@]}"
run step 2 140 "$PY" launch/bench/step.py --csv "$OUT/step_gpu.csv" --budget-s 110 --max-wall-s 135
run step_fused 4 60 "$PY" launch/bench/step.py --csv "$OUT/step_gpu.csv" --batch 24 --phases cudnn.benchmark \
  --variants official-fp32,trainer-bf16 --budget-s 40 --max-wall-s 55 "${FUSED[@]}"
run step_compile 8 90 "$PY" launch/bench/step.py --csv "$OUT/step_gpu.csv" --batch 24 --phases cudnn.benchmark \
  --variants official-fp32,trainer-bf16 --budget-s 65 --max-wall-s 85 "${COMPILED[@]}"
run profile 16 45 "$PY" launch/bench/profile_gpu.py --out "$OUT/profile"
run profile_fused 16 45 "$PY" launch/bench/profile_gpu.py --out "$OUT/profile_fused" "${FUSED[@]}"
run group_norm_silu 32 60 "$PY" -m launch.bench.kernels.group_norm_silu --csv "$OUT/group_norm_silu.csv"

log "gpu_check rc=$rc in $((SECONDS - T0)) s (bits: 1 kernel tests, 2 step bench, 4 fused levers, 8 compile levers,"\
" 16 profile, 32 group_norm_silu bench, 64 carried wheels / imports)"
exit $rc
