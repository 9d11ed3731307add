#!/usr/bin/env bash
# Download the MPII checkpoints published by princeton-vl/pytorch_stacked_hourglass and convert them
# to contract ONNX models: weights/mpii_hg2.onnx (2 stacks, val PCKh 0.883) and weights/mpii_hg8.onnx
# (8 stacks, 0.902). The URLs are the ones in that project's README ("Pretrained Models").
#
# Usage: scripts/fetch_published.sh [2] [8] [-- extra convert arguments, e.g. --half]
#   default: both. Downloads are cached in $CACHE_DIR (default ~/.cache/hourglass-serve/princeton)
#   and reused; OUT_DIR (default weights) receives the ONNX files. Needs curl or wget.
# The checkpoints are read with torch.load(weights_only=True) only: nothing in them is executed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hourglass-serve/princeton}"
OUT_DIR="${OUT_DIR:-weights}"
BASE_URL="http://www-personal.umich.edu/~cnris"

stacks=()
while (($#)); do
  case "$1" in
    2 | 8) stacks+=("$1"); shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [2] [8] [-- convert arguments]" >&2; exit 2 ;;
  esac
done
((${#stacks[@]})) || stacks=(2 8)

download() {  # url file
  if [[ -s "$2" ]]; then
    echo "cached: $2"
    return
  fi
  mkdir -p "$(dirname "$2")"
  echo "downloading $1"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$2.part" "$1"
  else
    wget -O "$2.part" "$1"
  fi
  mv "$2.part" "$2"
}

mkdir -p "$OUT_DIR"
for n in "${stacks[@]}"; do
  checkpoint="$CACHE_DIR/original_${n}hg/checkpoint.pt"
  download "$BASE_URL/original_${n}hg/checkpoint.pt" "$checkpoint"
  "$PYTHON" -m model_export convert --from princeton "$checkpoint" \
    --out "$OUT_DIR/mpii_hg${n}.onnx" --dataset MPII "$@"
done
