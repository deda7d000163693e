#!/usr/bin/env bash
# Creates .venv with the locked stack (uv.lock) and, when run as root, installs the Debian
# libraries Qt, VTK and the headless tests need. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# fonts-wqy-microhei: Chinese/Japanese/Korean glyphs for report plots and 3D labels (twin/view/fonts.py).
# mosquitto: the MQTT broker the live-twin tests start on a free port (twin/live, docs/live.md).
DEBS=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri xvfb xauth libglib2.0-0 libdbus-1-3 libfontconfig1
      libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
      libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxrender1 libxi6
      libsm6 libice6 fonts-wqy-microhei mosquitto)

say() { printf 'setup: %s\n' "$*" >&2; }

# 1. Debian libraries -------------------------------------------------------------------------
if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      say "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      say "these Debian packages are missing; install them once with:"
      say "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
      exit 1
    fi
  fi
fi

# 2. A Python >= 3.12 (Mesa 3.4+ needs it) ----------------------------------------------------
is_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
PY=""
candidates=("${CITYTWIN_PYTHON:-}" python3.14 python3.13 python3.12 python3)
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do candidates+=("$(pyenv prefix "$v" 2>/dev/null)/bin/python3"); done
fi
for c in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /opt/python*/bin/python3; do
  [ -x "$c" ] && candidates+=("$c")
done
for c in "${candidates[@]}"; do
  [ -n "$c" ] || continue
  exe=$(command -v "$c" 2>/dev/null || true)
  if [ -n "$exe" ] && is_ok "$exe"; then PY="$exe"; break; fi
done

# 3. uv, from PyPI, in a small tools environment ----------------------------------------------
UV=$(command -v uv 2>/dev/null || true)
if [ -z "$UV" ]; then
  if [ ! -x .tools/bin/uv ]; then
    boot="${PY:-$(command -v python3)}"
    if ! "$boot" -m venv .tools >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ]; then
        say "installing python3-venv"; apt-get install -y -qq python3-venv >/dev/null
        "$boot" -m venv .tools
      else
        say "cannot create a virtual environment with $boot; install python3-venv"; exit 1
      fi
    fi
    .tools/bin/pip install -q "uv==0.13.8"
  fi
  UV=.tools/bin/uv
fi

# 4. The locked environment, byte-compiled: the app starts in about half the time (measured).
if [ -n "$PY" ]; then
  say "using Python $("$PY" -c 'import platform; print(platform.python_version())') at $PY"
  "$UV" sync --frozen --compile-bytecode --python "$PY" "$@"
else
  say "no Python >= 3.12 found; letting uv fetch one"
  "$UV" sync --frozen --compile-bytecode --python ">=3.12" "$@"
fi
