#!/usr/bin/env bash
# The everyday-photo recipe (issue 31) on a lent GPU machine, in one device call of MINUTES of training.
#
# Here, once: stage the real training people into shards that fit a call (outside the tree, never committed):
#   .venv/bin/python -m model_export stage --out runs/staged --data-root ../shared/data \
#     --mpii-images ../shared/data/mpii_subset/images --mpii-train ../shared/data/mpii_subset/annotations.json
# (with a pseudo-labelled folder of `python -m model_export pseudo-label`: add --sources lsp,lspet,mpii,coco,pseudo,
# lsp-val --pseudo DIR there, and pseudo to the mix here: EVERYDAY_MIX=lsp:2,lspet:4,mpii:2,coco:4,pseudo:4,...)
# Each device call carries the working tree plus its `carry` paths, 64 MiB in all: the tracked tree is about 43 MiB
# (a test keeps it under 47), so one call carries one shard (16 MiB, the staging default) and, on a machine that is
# still warm, finds the shards and the run that earlier calls left there (runs/ is ignored, so it stays):
#   run(command="scripts/device_everyday.sh 8", carry=["runs/staged/shard-00"])     # then shard-01, ... in turn
# The run resumes exactly from runs/device/last.pt when the machine still has it; a fresh machine starts again
# from INIT's weights (default weights/default.pt; give the last call's best.pt, carried, to go on from it).
# What comes back under $OUT: env.txt, train.log, log.csv and best.pt / last.pt in 15 MB parts
# (reassemble here: cat $FILES/best.pt.part-* > runs/device/best.pt). Pick what ships by validation, as on the CPU
# (LSP im0901-im1000 is staged as lsp-val and scored every epoch; coco train2017-val with `evaluate`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/device_common.sh
source scripts/device_common.sh
MINUTES="${1:?usage: scripts/device_everyday.sh MINUTES [train arguments]}"
shift
: "${OUT:?OUT must name the folder that comes back}"
PY="${PYTHON:-python3}"
RUN="${RUN:-runs/device}"
INIT="${INIT:-weights/default.pt}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "cpus $(nproc)"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' || true
  echo "shards here: $(ls -d runs/staged/shard-* 2>/dev/null | tr '\n' ' ')"
} 2>&1 | tee "$OUT/env.txt"
start=(--init "$INIT")
[ -f "$RUN/last.pt" ] && start=(--resume "$RUN/last.pt")
set +e  # the training's own exit status is the call's, whatever the filters after it say
# batch 64 at twice the CPU recipe's rate (sqrt of the 4x batch); the CPU recipe's mix, shares and seeds otherwise
PYTHONUNBUFFERED=1 "$PY" -m model_export train --staged runs/staged \
  --dataset "${EVERYDAY_MIX:-lsp:2,lspet:4,mpii:2,coco:4,synthetic:0.5}" --truncate-prob 0.3 --occlusion-prob 0.4 \
  --whole-image-prob 0.2 --epoch-size 8000 --epochs 100000 --input-size 256 --batch-size 64 --optimizer adam \
  --lr 2e-4 --device cuda --amp --channels-last --workers "$(( $(nproc) - 2 ))" --no-progress --log-every 50 \
  --checkpoint-every 250 --max-minutes "$MINUTES" --seed 11 "${start[@]}" --out "$RUN" "$@" 2>&1 |
  tee "$OUT/train.log" | grep -E '^(training|epoch|done|Traceback|[A-Za-z]*Error)'
status=${PIPESTATUS[0]}
set -e
send_back "$RUN"
exit "$status"
