# Sourced by kernels/gpu_check.sh and launch/bench/gpu_check.sh once they are in the repo root, with CAP_DEFAULT set:
# the output folder, the python, the whole-script time cap (GPU_CHECK_CAP_S), the helpers that give each step at
# most what is left of it, and the carried wheels: where the folder GPU_WHEELS (default .whl, from `make gpu-wheels`)
# is present, carry_wheels installs the ones this python lacks with pip --no-index --no-deps --target GPU_SITE
# (default /tmp/daa-gpu-site) and puts that folder, then the repo root, first on PYTHONPATH.
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET DAA_KERNELS
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-$(command -v python3 || command -v python)}"  # the device image: python3 holds torch
CAP="${GPU_CHECK_CAP_S:-$CAP_DEFAULT}"
T0=$SECONDS
left() { echo $((CAP - (SECONDS - T0))); }
cap() { local l; l=$(left); if [ "$1" -lt "$l" ]; then echo "$1"; else echo $((l > 1 ? l : 1)); fi; }
log() { echo "$*" | tee -a "$OUT/env.txt"; }
WHEELS="${GPU_WHEELS:-.whl}"
SITE="${GPU_SITE:-/tmp/daa-gpu-site}"
carry_wheels() {  # install the carried wheels (if any) and set PYTHONPATH; in the calling shell, not a pipeline
  local picked
  local -a picked_
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  if [ ! -d "$WHEELS" ]; then echo "carried wheels: none ($WHEELS absent; make gpu-wheels builds it)"; return 0; fi
  picked=$("$PY" launch/bench/gpu_site.py pick "$WHEELS") || return 1
  if [ -n "$picked" ]; then
    mapfile -t picked_ <<< "$picked"
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "${picked_[@]}" || return 1
    echo "carried wheels: installed ${#picked_[@]} of $WHEELS into $SITE"
  fi
  export PYTHONPATH="$SITE:$PYTHONPATH"
}
env_info() {  # device, driver and versions (the carried packages' included), to stdout
  date -Is
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  timeout 60 "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'triton', triton.__version__, 'device', \
torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
  timeout 120 "$PY" launch/bench/gpu_site.py imports
}
prepare() {  # env.txt anew: the carried wheels, then env_info; status 1 when the install or an import failed
  local s=0
  : > "$OUT/env.txt"
  carry_wheels >> "$OUT/env.txt" 2>&1 || { s=1; echo "carried wheels: install FAILED" >> "$OUT/env.txt"; }
  cat "$OUT/env.txt"
  env_info 2>&1 | tee -a "$OUT/env.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || s=1
  return $s
}
KERNEL_TESTS=(tests/test_kernel_conditions.py tests/test_kernel_group_norm_silu.py)
