#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): train, or continue, the synthetic starting model
# for MINUTES of wall-clock time, then put the log and the checkpoints under $OUT in pieces
# under 16 MB (reassemble here with `cat last.pt.part-* > runs/synthetic/last.pt`).
# Usage: scripts/device_train.sh MINUTES [extra scripts/train_synthetic.sh arguments]
# It resumes from runs/synthetic/last.pt when that exists (a warm machine keeps runs/; a fresh
# one needs it carried).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh
MINUTES="${1:?usage: scripts/device_train.sh MINUTES [train arguments]}"
shift
: "${OUT:?OUT must name the folder that comes back}"
RUN=runs/synthetic
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "cpus $(nproc)"
  "${PYTHON:-python3}" -c 'import torch, onnxruntime as o; print("torch", torch.__version__, "ort", o.__version__, o.get_available_providers())' || true
} 2>&1 | tee "$OUT/env.txt"
RESUME=()
[ -f "$RUN/last.pt" ] && RESUME=(--resume "$RUN/last.pt")
status=0
PYTHONUNBUFFERED=1 PYTHON="${PYTHON:-python3}" scripts/train_synthetic.sh --no-progress --max-minutes "$MINUTES" \
  "${RESUME[@]}" "$@" 2>&1 | tee "$OUT/train.log" | grep -E '^(training|epoch|done|Traceback|[A-Za-z]*Error)' || status=$?
send_back "$RUN"
exit "$status"
