#!/usr/bin/env bash
# Turn a training checkpoint into the shipped default model:
#   weights/default.pt    the checkpoint's weights (PyTorch twin for the benchmarks, `--init` for new runs), without the
#                         optimiser state: 7 MB instead of 22 (the finish is re-run from the trunk's resumable
#                         checkpoint, weights/default_trunk.pt, by scripts/train_default.sh finish)
#   weights/default.onnx  the service's model (ONNX contract, provenance in its metadata)
#   weights/default.json  its evaluations: LSP test through the service's pipeline (with the person box and the whole
#                         photo letterboxed, plain and with flip + DARK; behind the person detector; every athlete
#                         matched) and LSP validation (im0901-im1000, the split that picks models) when the LSP data
#                         is at $DATA/lsp, the COCO test photo's skier (tests/data, the limb counts of
#                         tests/test_service_photo.py), held-out synthetic PCKh (the floor of
#                         tests/test_default_model.py, which CI can recompute without any dataset), coco_subset's
#                         val2017 people (behind the detector; with COCO's boxes) and train2017-val boxes when it is at
#                         $DATA/coco_subset, and the MPII subset's people when it is at $DATA/mpii_subset
# Usage: scripts/ship_default.sh [CHECKPOINT]   (default runs/default/finish/last.pt)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DATA="${DATA:-../shared/data}"
CKPT="${1:-runs/default/finish/last.pt}"
[ -f "$CKPT" ] || { echo "error: checkpoint $CKPT not found (run scripts/train_default.sh first)" >&2; exit 1; }

"$PY" -c 'import sys; from model_export.checkpoint import TrainingCheckpoint as C; C.read(sys.argv[1]).weights_only().save(sys.argv[2])' \
  "$CKPT" weights/default.pt
"$PY" -m model_export export --checkpoint weights/default.pt --out weights/default.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m model_export evaluate --onnx weights/default.onnx --dataset synthetic --json "$tmp/synthetic.json"
"$PY" -m model_export evaluate --onnx weights/default.onnx --dataset coco \
  --coco-annotations tests/data/000000000785_keypoints.json --json "$tmp/coco_skier.json"
if [ -f "$DATA/lsp/joints.mat" ]; then
  # box and whole photo letterboxed (--detector ''): the model's own numbers; behind the detector: lsp_test_detector
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset lsp-test --lsp "$DATA/lsp" --detector '' \
    --json "$tmp/lsp_test.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset lsp-test --lsp "$DATA/lsp" --detector '' \
    --flip --refine dark --json "$tmp/lsp_test_flip_dark.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset lsp-val --lsp "$DATA/lsp" --detector '' \
    --json "$tmp/lsp_val.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset lsp-test --lsp "$DATA/lsp" \
    --json "$tmp/lsp_test_detector.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset lsp-test --lsp "$DATA/lsp" --mode people \
    --json "$tmp/lsp_test_people.json"
else
  echo "warning: no LSP data at $DATA/lsp: default.json gets the synthetic evaluation only" >&2
fi
if [ -f "$DATA/coco_subset/person_keypoints.json" ]; then
  coco=(--dataset coco --coco-annotations "$DATA/coco_subset/person_keypoints.json" --coco-images "$DATA/coco_subset/images")
  # every person of whole photos, behind the detector; COCO's boxes (the issue's measure), test and held-out splits
  "$PY" -m model_export evaluate --onnx weights/default.onnx "${coco[@]}" --mode people --coco-split val2017 \
    --json "$tmp/coco_val_people.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx "${coco[@]}" --mode box --detector '' \
    --coco-split val2017 --json "$tmp/coco_val_box.json"
  "$PY" -m model_export evaluate --onnx weights/default.onnx "${coco[@]}" --mode box --detector '' \
    --coco-split train2017-val --json "$tmp/coco_holdout_box.json"
fi
if [ -f "$DATA/mpii_subset/annotations.json" ]; then  # every person of the MPII frames (training photos)
  "$PY" -m model_export evaluate --onnx weights/default.onnx --dataset mpii-subset --mpii-subset "$DATA/mpii_subset" \
    --mode people --json "$tmp/mpii_subset_people.json"
fi
"$PY" - "$tmp" weights/default.json <<'EOF'
import json, pathlib, sys
folder, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
merged = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
out.write_text(json.dumps(merged, indent=2) + "\n")
print(f"wrote {out}: {', '.join(merged)}")
EOF
