#!/usr/bin/env bash
# Create .venv in the repo root with the locked stack. Idempotent: skipped when pyproject.toml,
# the lock files and this script have not changed since the last successful install.
# Usage: infra/install.sh [--gpu] [--production] [--deps-only]
#   --gpu         infra/requirements-gpu.lock (CUDA 13 torch + onnxruntime-gpu) instead of the CPU lock
#   --production  no test tools (infra/requirements-test.lock) and no Chromium: the image
#   --deps-only   the locked packages only, not vipwatch itself (the image's dependency layer)
# Every package comes from a hash-locked file (infra/lock.sh writes them from pyproject.toml) and
# is installed with --require-hashes --no-deps: nothing unlisted, nothing altered.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.vipwatch-install
GPU=0 PRODUCTION=0 DEPS_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --production) PRODUCTION=1 ;;
    --deps-only) DEPS_ONLY=1 ;;
    *) echo "infra/install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
LOCKS=(infra/requirements.lock)
[ "$GPU" = 1 ] && LOCKS=(infra/requirements-gpu.lock)
[ "$PRODUCTION" = 1 ] || LOCKS+=(infra/requirements-test.lock)
# Headless Chromium renders jobs.report's HTML in tests/integration/test_report.py (Debian package).
if [ "$PRODUCTION" = 0 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }
  else
    echo "infra/install.sh: chromium not found and not root: run 'sudo apt-get install -y chromium'" \
         "(tests/integration/test_report.py needs it and is skipped without it)" >&2
  fi
fi
WANT="$(cat pyproject.toml infra/install.sh "${LOCKS[@]}" | sha256sum | cut -c1-16) $*"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
# Never both onnxruntime builds in one environment: they share the module name.
if [ "$GPU" = 1 ]; then $PIP uninstall -q -y onnxruntime >/dev/null 2>&1 || true; fi
LOCK_ARGS=()
for lock in "${LOCKS[@]}"; do LOCK_ARGS+=(-r "$lock"); done
# torch is in the lock with its hash: 2.13.0+cpu (the CPU build: from local disk on developer and
# CI machines, from the PyTorch CPU index in the image) or PyPI's 2.13.0 (CUDA 13) with --gpu.
$PIP install -q --require-hashes --no-deps "${LOCK_ARGS[@]}"
# The older install put the GUI opencv-python (insightface's metadata) beside the headless one.
if $PIP show opencv-python >/dev/null 2>&1; then
  $PIP uninstall -q -y opencv-python && $PIP install -q --force-reinstall --require-hashes --no-deps \
    -r <(awk '/^opencv-python-headless==/ {p = 1; print; next} p && /^ / {print; next} {p = 0}' "${LOCKS[0]}")
fi
if [ "$DEPS_ONLY" = 0 ]; then
  # vipwatch itself, editable (the checkout, or /app in the image). The lock already holds all its
  # dependencies, so pip adds nothing; a pin added to pyproject.toml without re-running
  # infra/lock.sh still gets installed (unhashed) and tests/unit/infra/test_locks.py fails until
  # the lock is regenerated. With --gpu no dependencies: they would bring the CPU onnxruntime back.
  if [ "$GPU" = 1 ]; then
    $PIP install -q --no-deps --no-build-isolation -e .
  elif [ "$PRODUCTION" = 1 ]; then
    $PIP install -q --no-build-isolation -e .
  else
    $PIP install -q --no-build-isolation -e ".[test]"
  fi
  .venv/bin/python -c "import cv2, insightface, ray, faiss, dlib, torch; print('vipwatch env ok: torch', torch.__version__, 'ray', ray.__version__)"
fi
echo "$WANT" > "$STAMP"
