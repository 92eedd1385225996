#!/usr/bin/env bash
# GPU check for a fresh GPU machine with this checkout, in under 8 minutes (every step has a cap):
#   1. infra/install.sh --gpu (onnxruntime-gpu + faiss-gpu in place of the CPU builds)
#   2. the CUDA paths ACTUALLY active (vipwatch.bench.gpu_report providers: an onnxruntime
#      session's get_providers(), torch.cuda.is_available(), faiss.get_num_gpus())
#   3. jobs.benchmark --images N with the ONNX pack on CUDA and the forgery stage on
#   4. jobs.benchmark --gallery-sizes S --faiss-gpu (exact search on the GPU + IVF)
# while nvidia-smi samples utilisation; the last line printed is one JSON summary (images/s per
# GPU, utilisation per phase, providers). Logs and raw reports stay in --out.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: infra/gpu_check.sh [--images N] [--gallery-sizes S] [--shared DIR] [--out DIR]
                          [--skip-install] [--dry-run] [--help]
  --images N          corpus size of the image benchmark (default 2000)
  --gallery-sizes S   gallery sizes of the FAISS benchmark (default 100000,1000000)
  --shared DIR        data and weights (../shared layout; default $VIPWATCH_SHARED or ../shared)
  --out DIR           logs and reports (default ./gpu-check-<UTC time>)
  --skip-install      use the environment as it is (.venv or python3)
  --dry-run           print each step with its time cap, run nothing
EOF
}

IMAGES=2000
GALLERY_SIZES=100000,1000000
SHARED=${VIPWATCH_SHARED:-}
OUT=
INSTALL=1
DRY_RUN=0
value_of() {  # the value after option $1, or exit 2 when there is none
  if [ $# -lt 2 ] || [ -z "$2" ]; then echo "gpu_check: $1 needs a value" >&2; usage >&2; exit 2; fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --images) value_of "$@"; IMAGES=$2; shift 2 ;;
    --gallery-sizes) value_of "$@"; GALLERY_SIZES=$2; shift 2 ;;
    --shared) value_of "$@"; SHARED=$2; shift 2 ;;
    --out) value_of "$@"; OUT=$2; shift 2 ;;
    --skip-install) INSTALL=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$IMAGES" in ''|*[!0-9]*) echo "gpu_check: --images must be a whole number, got '$IMAGES'" >&2; exit 2 ;; esac
case "$GALLERY_SIZES" in ''|*[!0-9,]*) echo "gpu_check: --gallery-sizes must be like 100000,1000000" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
REPO=$PWD
SHARED=${SHARED:-$REPO/../shared}
OUT=${OUT:-$REPO/gpu-check-$(date -u +%Y%m%dT%H%M%S)}

# Time caps in seconds; their sum (plus ~10 s of bookkeeping) stays under 480.
CAP_INSTALL=150
CAP_PROVIDERS=30
CAP_IMAGES=190
CAP_GALLERY=90
TOTAL_CAP=$((CAP_INSTALL + CAP_PROVIDERS + CAP_IMAGES + CAP_GALLERY))

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
DETECTOR="$SHARED/models/scrfd_500m_kps.onnx"
IMAGE_CMD=(-m jobs.benchmark --images "$IMAGES" --model-pack "$SHARED/models" --device cuda
           --actor-gpus 1 --batch-size 64 --shard-size 100000 --forgery --warmup-images 32)
# Exact search only: flat is what index.faiss_index puts on the GPU (HNSW stays on CPU).
GALLERY_CMD=(-m jobs.benchmark --gallery-sizes "$GALLERY_SIZES" --dims 128,512 --kinds ""
             --genuine-probes 4000 --impostor-probes 4000 --faiss-gpu)

if [ "$DRY_RUN" = 1 ]; then
  [ "$INSTALL" = 1 ] && echo "step install cap=${CAP_INSTALL}s: infra/install.sh --gpu"
  echo "step providers cap=${CAP_PROVIDERS}s: $PY -m vipwatch.bench.gpu_report providers --model $DETECTOR --device cuda"
  echo "step images cap=${CAP_IMAGES}s: $PY ${IMAGE_CMD[*]}"
  echo "step gallery cap=${CAP_GALLERY}s: $PY ${GALLERY_CMD[*]}"
  echo "total cap=${TOTAL_CAP}s"
  exit 0
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or sees no device); nothing measured" >&2
  exit 3
fi
[ -f "$DETECTOR" ] || { echo "gpu_check: $DETECTOR not found: pass --shared DIR (../shared layout)" >&2; exit 3; }

mkdir -p "$OUT"
export PYTHONPATH=$REPO RAY_DATA_DISABLE_PROGRESS_BARS=1 RAY_USAGE_STATS_ENABLED=0 \
       AWS_EC2_METADATA_DISABLED=true VIPWATCH_SHARED=$SHARED
nvidia-smi -L > "$OUT/gpus.txt"
: > "$OUT/phases.tsv"

# phase NAME CAP COMMAND...: runs COMMAND under `timeout CAP`, output to OUT/NAME.log, and records
# its start and end for the utilisation per phase.
phase() {
  local name=$1 cap=$2; shift 2
  local start rc
  start=$(date +%s.%N)
  echo "gpu_check: $name (cap ${cap}s)" >&2
  timeout --kill-after=10 "$cap" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$start" "$(date +%s.%N)" >> "$OUT/phases.tsv"
  [ $rc = 124 ] && echo "gpu_check: $name hit its ${cap}s cap" >&2
  [ $rc != 0 ] && [ $rc != 124 ] && echo "gpu_check: $name failed (rc $rc), see $OUT/$name.log" >&2
  return 0
}

nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits \
  -lms 500 > "$OUT/smi.csv" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

if [ "$INSTALL" = 1 ]; then
  phase install "$CAP_INSTALL" infra/install.sh --gpu
  [ -x .venv/bin/python ] && PY=.venv/bin/python
fi
phase providers "$CAP_PROVIDERS" "$PY" -m vipwatch.bench.gpu_report providers --model "$DETECTOR" --device cuda
phase images "$CAP_IMAGES" "$PY" "${IMAGE_CMD[@]}"
phase gallery "$CAP_GALLERY" "$PY" "${GALLERY_CMD[@]}"

kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
"$PY" -m vipwatch.bench.gpu_report summary --samples "$OUT/smi.csv" --phases "$OUT/phases.tsv" \
  --images "$OUT/images.log" --gallery "$OUT/gallery.log" --providers "$OUT/providers.log" | tee "$OUT/summary.json"
