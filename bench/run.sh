#!/usr/bin/env bash
# The benchmark, in one command:
#   bash bench/run.sh        # everything: small + large, links loopback and 100mbit, both plugins, 3 reps
#   bash bench/run.sh --sizes small --links loopback --repeat 1 --skip-ndjson   # a subset
#   bash bench/run.sh --help # the options (of bench/harness.py)
#
# 1. creates or updates bench/.venv (uv, pinned by constraints.txt + bench/constraints-extra.txt)
#    with this project and napari-cryoet-data-portal 0.5.0, which is installed here only;
# 2. runs bench/harness.py under Xvfb (napari needs a GL context: software llvmpipe);
# 3. writes bench/results/*.json and docs/benchmarks.md.
# System packages (Xvfb, GL, xcb libraries) come from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=bench/.venv
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bench: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv
echo "bench: installing the project and napari-cryoet-data-portal==0.5.0 into $VENV"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
  -c constraints.txt -c bench/constraints-extra.txt \
  -e ".[demo,pyqt6]" "napari-cryoet-data-portal==0.5.0" psutil
# Imports should cost what they cost a user, whose pip writes .pyc files (uv does not, and this
# shell may export PYTHONDONTWRITEBYTECODE=1): compile everything once (~1 min, then ~6 s).
echo "bench: compiling bytecode"
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" src >/dev/null || true

command -v xvfb-run >/dev/null || { echo "bench: xvfb-run missing; run scripts/setup.sh first" >&2; exit 1; }
# Qt must use xcb on the virtual display: the offscreen platform has no OpenGL for napari.
unset QT_QPA_PLATFORM
export QT_QPA_PLATFORM=xcb
exec xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/python" bench/harness.py "$@"
