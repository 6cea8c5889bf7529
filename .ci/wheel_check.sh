#!/usr/bin/env bash
# The installed product, away from the checkout: build a wheel, install it into a fresh venv outside the repository,
# and run the console scripts from another directory (named configs must load from the package).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TORCH=${TORCH:-torch==2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PY -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" .
wheel=$(ls "$work"/dist/daa-*.whl)
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q $TORCH numpy
"$work/venv/bin/python" -m pip install -q "$wheel"
cd "$work"
if "$work/venv/bin/python" -c "import launch" 2>/dev/null; then echo "wheel: the harnesses (launch/) must not ship"; exit 1; fi
"$work/venv/bin/daa-train" --config demo --dry-run --set data.shards=synthetic > dry.txt
grep -q "restorer: unet" dry.txt && grep -q '"zero_optimization"' dry.txt
"$work/venv/bin/daa-restore" --help > /dev/null
"$work/venv/bin/daa-export" --help > /dev/null
"$work/venv/bin/daa-shards" --help > /dev/null
"$work/venv/bin/python" -c "import daa, daa.config as c; assert 'site-packages' in c.CONFIG_DIR.as_posix(), c.CONFIG_DIR"
echo "wheel check: ok ($(basename "$wheel") in a fresh venv, console scripts run from $work)"
