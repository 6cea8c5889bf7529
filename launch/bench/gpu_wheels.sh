#!/usr/bin/env bash
# `make gpu-wheels`: the wheels launch/bench/gpu_check.sh needs that the GPU device image lacks, built or downloaded
# here into an ignored folder that travels with the tree (the device cannot fetch anything):
#
#   bash launch/bench/gpu_wheels.sh                       # .whl/ for the device: CPython 3.12, manylinux x86-64
#   PYV=3.11 DEST=runs/x/whl bash launch/bench/gpu_wheels.sh   # the same set for another CPython (the rehearsal)
#   DS_WHEEL=.whl/deepspeed-...whl ...                    # reuse a deepspeed wheel built before instead of building
#
# The list and its versions: launch/bench/gpu_wheels.txt. deepspeed is built from its sdist with no op compiled
# (DS_BUILD_OPS=0: a py3-none-any wheel; its ops stay JIT and the trainer needs none); the others are binary wheels
# for PYV. The folder is rebuilt whole in a temporary folder beside it and swapped in only when complete.
# gpu_check.sh installs it with pip --no-index --no-deps --target (launch/bench/gpu_site.py picks the wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
PYV="${PYV:-3.12}"
DEST="${DEST:-.whl}"
LIMIT_MIB="${LIMIT_MIB:-32}"  # the device tree carries 64 MiB in all; the wheels keep to half of it
LIST=launch/bench/gpu_wheels.txt
mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')
DS_PIN=""
OTHERS=()
for p in "${PINS[@]}"; do
  case "$p" in deepspeed==*) DS_PIN=$p ;; *) OTHERS+=("$p") ;; esac
done
[ -n "$DS_PIN" ] || { echo "gpu-wheels: $LIST names no deepspeed==VERSION" >&2; exit 2; }

if [ -e "$DEST" ] && find "$DEST" -mindepth 1 ! -name '*.whl' | grep -q .; then
  echo "gpu-wheels: $DEST holds more than wheels; not replacing it (choose another DEST=)" >&2
  exit 2
fi
mkdir -p "$(dirname "$DEST")"
TMP=$(mktemp -d "$(dirname "$DEST")/.gpu-wheels.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
t0=$SECONDS
pip_() {  # pip, less the warnings about pip.conf's local indexes that hold no such package
  local s=0
  "$PY" -m pip "$@" 2> "$TMP/.err" || s=$?
  grep -v 'is ignored: it is neither a file nor a directory' "$TMP/.err" >&2 || true
  rm -f "$TMP/.err"
  return $s
}
if [ -n "${DS_WHEEL:-}" ]; then  # the pure wheel built by an earlier run (any CPython takes it): checked below
  case "$(basename "$DS_WHEEL")" in
    deepspeed-"${DS_PIN#deepspeed==}"-*) cp "$DS_WHEEL" "$TMP"/ ;;
    *) echo "gpu-wheels: DS_WHEEL=$DS_WHEEL is not $DS_PIN" >&2; exit 2 ;;
  esac
else
  # --no-cache-dir: never a wheel built earlier on this box (one built with DS_BUILD_* would carry compiled ops)
  DS_BUILD_OPS=0 pip_ wheel -q --no-deps --no-cache-dir --no-binary deepspeed -w "$TMP" "$DS_PIN"
fi
so=$(unzip -l "$TMP"/deepspeed-*.whl | grep -c '\.so$' || true)
case "$(basename "$TMP"/deepspeed-*.whl)" in
  *-py3-none-any.whl) ;;
  *) echo "gpu-wheels: the deepspeed wheel is not pure Python: $(basename "$TMP"/deepspeed-*.whl)" >&2; exit 1 ;;
esac
[ "$so" -eq 0 ] || { echo "gpu-wheels: the deepspeed wheel holds $so compiled ops" >&2; exit 1; }
# pip matches each manylinux_2_N tag exactly; these packages publish none newer than manylinux_2_28
pip_ download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$TMP" "${OTHERS[@]}"
n=$(find "$TMP" -maxdepth 1 -name '*.whl' | wc -l)
[ "$n" -eq "${#PINS[@]}" ] || { echo "gpu-wheels: $n wheels for ${#PINS[@]} pins in $TMP" >&2; exit 1; }
bytes=$(du -sb "$TMP" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu-wheels: $mib MiB, over the ${LIMIT_MIB} MiB allowed" >&2
  exit 1
fi
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
ls -1 "$DEST"
echo "gpu-wheels: $n wheels for CPython $PYV in $DEST: $mib MiB ($bytes bytes), $((SECONDS - t0)) s"
