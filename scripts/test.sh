#!/usr/bin/env bash
# The whole test suite, headless: the 3D widget needs a real GL context, so it runs under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
export QT_QPA_PLATFORM=xcb
.venv/bin/lint-imports
if [ -z "${DISPLAY:-}" ] || [ -n "${CI:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
