# Sourced by kernels/gpu_check.sh and launch/bench/gpu_check.sh once they are in the repo root, with CAP_DEFAULT set:
# the output folder, the python, the whole-script time cap (GPU_CHECK_CAP_S) and the helpers that give each step at
# most what is left of it.
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET DAA_KERNELS
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-$(command -v python || command -v python3)}"
CAP="${GPU_CHECK_CAP_S:-$CAP_DEFAULT}"
T0=$SECONDS
left() { echo $((CAP - (SECONDS - T0))); }
cap() { local l; l=$(left); if [ "$1" -lt "$l" ]; then echo "$1"; else echo $((l > 1 ? l : 1)); fi; }
log() { echo "$*" | tee -a "$OUT/env.txt"; }
env_info() {  # device, driver and versions, to stdout
  date -Is
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  timeout 60 "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'triton', triton.__version__, 'device', torch.cuda.get_device_name())"
}
KERNEL_TESTS=(tests/test_kernel_conditions.py tests/test_kernel_group_norm_silu.py)
