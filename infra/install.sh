#!/usr/bin/env bash
# Create .venv in the repo root with the pinned stack. Idempotent: skipped when pyproject.toml
# has not changed since the last successful install. Usage: infra/install.sh [--gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.vipwatch-install
# Headless Chromium renders jobs.report's HTML in tests/integration/test_report.py (Debian package).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }
  else
    echo "infra/install.sh: chromium not found and not root: run 'sudo apt-get install -y chromium'" \
         "(tests/integration/test_report.py needs it and is skipped without it)" >&2
  fi
fi
WANT="$(sha256sum pyproject.toml infra/install.sh | sha256sum | cut -c1-16)${1:-}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first and pinned: the CPU build comes from local disk; unpinned pulls GBs of CUDA.
$PIP install -q torch==2.13.0
$PIP install -q -e ".[test]"
# insightface's metadata wants the GUI opencv-python, which clobbers the headless cv2: no deps.
$PIP install -q --no-deps insightface==2.1
if $PIP show opencv-python >/dev/null 2>&1; then
  $PIP uninstall -q -y opencv-python && $PIP install -q --force-reinstall --no-deps opencv-python-headless==5.0.0.93
fi
if [ "${1:-}" = "--gpu" ]; then
  $PIP uninstall -q -y onnxruntime faiss-cpu
  $PIP install -q ".[gpu]"
fi
.venv/bin/python -c "import cv2, insightface, ray, faiss, dlib, torch; print('vipwatch env ok: torch', torch.__version__, 'ray', ray.__version__)"
echo "$WANT" > "$STAMP"
