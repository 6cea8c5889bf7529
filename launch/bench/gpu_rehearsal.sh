#!/usr/bin/env bash
# `make gpu-rehearsal`: the start of launch/bench/gpu_check.sh on a bare device image, rehearsed on this CPU box.
#
#   bash launch/bench/gpu_rehearsal.sh        # from anywhere; everything under runs/gpu-rehearsal/ (ignored)
#
# 1. a fresh venv holding only the image's packages that matter here (IMAGE below), checked to lack the carried ones;
# 2. the carried wheels for that venv's CPython (launch/bench/gpu_wheels.sh, the script of `make gpu-wheels`);
# 3. the GPU script's own preparation, unchanged: kernels/gpu_check_common.sh's `prepare` installs them with
#    pip --no-index --no-deps --target and PYTHONPATH, then imports every module the GPU scripts reach
#    (launch/bench/gpu_site.py imports) into env.txt;
# 4. what the GPU script then runs, at CPU size: the step benchmark's official step and the Trainer (DeepSpeed
#    ZeRO-2, fp32) for two timed steps each, the GPU profiler's path with the Trainer in bf16 for one step, and the
#    kernel tests' collection (their imports, conftest's included);
# 5. the device's own folder (.whl, CPython 3.12, from `make gpu-wheels`) installed the same way into a CPython 3.12
#    venv holding numpy + pyyaml, and its packages that need no torch imported there.
# The CPU torch wheel is cp311 only (the cp312 torch on PyPI is the CUDA build, 527 MB plus the CUDA libraries), so
# steps 1-4 run on CPython 3.11 (REHEARSAL_PYTHON) with cp311 wheels of the same pins; step 5 checks the cp312 ones.
# Prints the seconds of each step and the size of each wheel folder; exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
R="${REHEARSAL_DIR:-runs/gpu-rehearsal}"
RPY="${REHEARSAL_PYTHON:-python3.11}"
PY312="${REHEARSAL_PYTHON312:-python3.12}"
if [ -z "${REHEARSAL_PYTHON312:-}" ] && ! "$PY312" -c '' 2> /dev/null; then  # pyenv: any installed 3.12
  PY312=$(find "${PYENV_ROOT:-$HOME/.pyenv}/versions" -maxdepth 3 -path '*/3.12*/bin/python3.12' 2> /dev/null \
    | sort -V | tail -n 1)
fi
# the device image's versions where its package list gives them (KINDS.md: triton 3.6.0, accelerate 1.15.0,
# safetensors 0.8.0); torch is the CPU build nearest the image's 2.11 that this box has
IMAGE=(torch==2.13.0 triton==3.6.0 numpy pyyaml pytest opencv-python-headless scikit-image h5py safetensors==0.8.0
       tensorboard tqdm einops msgpack psutil packaging py-cpuinfo ninja accelerate==1.15.0 pillow scipy)
CARRIED_MODULES=(deepspeed webdataset braceexpand hjson pydantic pydantic_core annotated_types typing_inspection)
RT0=$SECONDS  # not T0: kernels/gpu_check_common.sh sets its own
step() { echo "== gpu-rehearsal: $* ($((SECONDS - RT0)) s)"; }
size() { du -sb "$1" | awk -v d="$1" '{ printf "%s: %.1f MiB\n", d, $1 / 1048576 }'; }
mkdir -p "$R"
R=$(cd "$R" && pwd)

V="$R/venv/bin/python"
if [ "${REHEARSAL_KEEP_VENV:-0}" = 1 ] && [ -x "$V" ]; then  # iterating on the scripts: reuse step 1's venv
  step "1. the venv of an earlier run ($RPY; REHEARSAL_KEEP_VENV=1)"
else
  step "1. fresh venv ($RPY) with the image's packages"
  rm -rf "$R/venv"
  "$RPY" -m venv "$R/venv"
  "$V" -m pip install -q "${IMAGE[@]}" 2> >(grep -v 'is ignored: it is neither' >&2)
fi
"$V" - "${CARRIED_MODULES[@]}" <<'EOF'
import importlib.util, sys
have = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]
if have:
    sys.exit(f"the image stand-in already holds {' '.join(have)}: the rehearsal would prove nothing")
print("venv lacks, as the image does:", " ".join(sys.argv[1:]))
EOF
PYV=$("$V" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

step "2. carried wheels for CPython $PYV"
ds=(.whl/deepspeed-*-py3-none-any.whl)  # the device folder's pure deepspeed wheel (make gpu-wheels), if built
[ -f "${ds[0]}" ] && export DS_WHEEL="${ds[0]}"
PYV="$PYV" DEST="$R/whl$PYV" bash launch/bench/gpu_wheels.sh | tail -n 1

step "3. the GPU script's preparation (install + import check)"
rm -rf "$R/site" "$R/out"
(
  export PYTHON="$V" GPU_WHEELS="$R/whl$PYV" GPU_SITE="$R/site" OUT="$R/out" CAP_DEFAULT=600
  # shellcheck source=/dev/null
  . kernels/gpu_check_common.sh
  set +e  # as on the device (gpu_check.sh runs without -e): each status is checked below
  prepare || { echo "gpu-rehearsal: the preparation failed (env.txt above)" >&2; exit 1; }
  export TRITON_INTERPRET=1  # CPU: the Triton kernels run in the interpreter (the common file unsets it for GPUs)

  step "4. the GPU script's steps at CPU size: step benchmark (official, Trainer ZeRO-2 fp32), profiler (bf16)"
  "$PY" launch/bench/step.py --quick --batch 2 --variants official-fp32,trainer-fp32 --warmup 1 --steps 2 \
    --csv "$OUT/step.csv" > "$OUT/step.log" 2>&1 || { tail -n 40 "$OUT/step.log"; exit 1; }
  grep -E "^default " "$OUT/step.log"
  [ "$(grep -cE '^default .* ok$' "$OUT/step.log")" -eq 2 ] || { echo "gpu-rehearsal: a step variant failed" >&2; exit 1; }
  # the Trainer in bf16, as the GPU profile runs it (bf16 is slow on CPUs without bf16 units: one step)
  "$PY" launch/bench/profile_gpu.py --device cpu --precision bf16 --size 32 --batch 2 --diffusion-preset tiny \
    --restorer-args '{"depth": 2, "wf": 8}' --warmup 0 --steps 1 --out "$OUT/profile" > "$OUT/profile.log" 2>&1 \
    || { tail -n 40 "$OUT/profile.log"; exit 1; }
  head -n 1 "$OUT/profile.md"
  grep -F '**wall**' "$OUT/profile.md"
  "$PY" -m pytest -q -p no:cacheprovider --collect-only "${KERNEL_TESTS[@]}" > "$OUT/collect.log" 2>&1 \
    || { tail -n 40 "$OUT/collect.log"; exit 1; }
  tail -n 1 "$OUT/collect.log"
)

step "5. the device's folder (.whl, CPython 3.12) in a CPython 3.12 venv"
if [ ! -d .whl ]; then echo "no .whl: run make gpu-wheels first" >&2; exit 1; fi
if [ -z "$PY312" ] || ! "$PY312" -c '' 2> /dev/null; then
  echo "no CPython 3.12 on this box (REHEARSAL_PYTHON312=...): the cp312 wheels were NOT checked" >&2
  exit 1
fi
rm -rf "$R/venv312" "$R/site312"
"$PY312" -m venv "$R/venv312"
"$R/venv312/bin/python" -m pip install -q numpy pyyaml 2> >(grep -v 'is ignored: it is neither' >&2)
(
  export PYTHON="$R/venv312/bin/python" GPU_SITE="$R/site312" OUT="$R/out312" CAP_DEFAULT=600
  # shellcheck source=/dev/null
  . kernels/gpu_check_common.sh
  carry_wheels || exit 1
  "$PY" - <<'EOF'
import sys

import braceexpand, hjson, pydantic, pydantic_core, webdataset  # noqa: E401,F401 - deepspeed needs torch: step 3

class Cfg(pydantic.BaseModel):
    stage: int
assert Cfg(stage="2").stage == 2 and list(braceexpand.braceexpand("a{0..1}")) == ["a0", "a1"]
print(f"CPython {sys.version.split()[0]}: pydantic {pydantic.VERSION} (core {pydantic_core.__version__}, "
      f"{pydantic_core.__file__.split('site312/')[-1]}), hjson {hjson.__version__}, webdataset {webdataset.__version__}")
EOF
)
size .whl
size "$R/whl$PYV"
step "done"
