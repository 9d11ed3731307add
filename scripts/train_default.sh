#!/usr/bin/env bash
# Trains the shipped default model (weights/default.onnx) on real photos, in stages, on a CPU:
#
#   scripts/train_default.sh trunk [ARGS]    stage 1: 128x128 crops (5x faster per image than 256 on this CPU),
#                                            Adam 1e-3 then 1e-4 after step TRUNK_DROP (10001), TRUNK_STEPS steps in
#                                            all (11500), from weights/synthetic_init.pt; resumes by itself from
#                                            RUNS/trunk/last.pt, else from the trunk's checkpoint (weights/
#                                            default_trunk.pt, taken from git history, commit 79c7f53, if absent)
#   scripts/train_default.sh finish [ARGS]   stage 2: 256x256 crops from the trunk's checkpoint TRUNK (default
#                                            weights/default_trunk.pt), Adam 2.5e-4 then 2.5e-5 after FINISH_DROP
#                                            (2250) steps, FINISH_STEPS (2800) steps in all; writes
#                                            RUNS/finish/{last,best}.pt and resumes from RUNS/finish/last.pt
#   scripts/train_default.sh polish [ARGS]   stage 3: 256x256 again, a second cycle from the finish's weights FINISH
#                                            (default RUNS/finish/last.pt): Adam 1e-4 then 1e-5 after POLISH_DROP
#                                            (1800) steps, POLISH_STEPS (2400) in all; writes RUNS/polish/ and
#                                            resumes from RUNS/polish/last.pt, else from RESUME when set (such as
#                                            RESUME=weights/default_resume.pt, the committed checkpoint of an
#                                            unfinished cycle; see the model card). Each cycle after the first starts
#                                            from the last: FINISH=runs/.../polish/last.pt RUNS=runs/next
#                                            (POLISH_STEPS and POLISH_DROP shorten it)
#   scripts/train_default.sh deepen [ARGS]   stage 4: the 2-stack model FROM (default weights/default_next.pt, the third
#                                            polish) grown to 3 stacks with the same predictions (`python -m
#                                            model_export deepen`: the new stack copies the last), then one polish
#                                            cycle of DEEPEN_STEPS (2200) steps, lr / 10 after DEEPEN_DROP (1600),
#                                            seed 5; writes RUNS/deepen/ and resumes from RUNS/deepen/last.pt
#   scripts/train_default.sh everyday [ARGS]  stage 5 (issue 31): one polish cycle from FROM (default weights/default.pt)
#                                            towards everyday photos: coco_subset's train2017-fit people join the mix
#                                            (EVERYDAY_MIX), a third of the box crops cut off by the photo's edge,
#                                            two fifths partly covered; EVERYDAY_STEPS (2000), lr / 10 after
#                                            EVERYDAY_DROP (1500), seed 7; writes RUNS/everyday/ and resumes from
#                                            RUNS/everyday/last.pt (or RESUME). Pick by LSP val and coco train2017-val
#   scripts/train_default.sh ship [CKPT]     export CKPT (default RUNS/deepen/last.pt, else RUNS/polish/last.pt, else
#                                            RUNS/finish/last.pt) as the default model (scripts/ship_default.sh)
#
# The shipped model is the deepened one plus one more cycle of the same length (sixth session):
#   FINISH=runs/default/deepen/last.pt POLISH_STEPS=2200 POLISH_DROP=1600 RUNS=runs/next \
#     scripts/train_default.sh polish --seed 6 && RUNS=runs/next scripts/train_default.sh ship
#
# Data: LSP im0001-im0900, LSPET, the MPII subset (and a little of the synthetic figures), from DATA (default
# ../shared/data; see its README). LSP im0901-im1000 is the validation split (PCK@0.2 per epoch); LSP test
# (im1001-im2000) is never trained on. Extra ARGS are passed on to `python -m model_export train`; later ones win.
# Measured on the 2-core machine: trunk 27-34 images/s, finish about 8 images/s (bf16 autocast + channels-last,
# 2 torch threads, 1 data worker). The shipped model's trunk and finish steps are in weights/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
DATA="${DATA:-../shared/data}"
RUNS="${RUNS:-runs/default}"
STAGE="${1:-}"
shift || true

data=(
  --dataset lsp:2,lspet:5,mpii:2,synthetic:0.5 --data-root "$DATA"
  --mpii-images "$DATA/mpii_subset/images" --mpii-train "$DATA/mpii_subset/annotations.json"
  --whole-image-prob 0.25 --epoch-size 8000 --epochs 100000
)
machine=(--amp --channels-last --device cpu --threads 2 --workers 1 --no-progress --log-every 50)

# Checkpoints of earlier stages left the tree (it must stay well under the 64 MiB a GPU machine is sent); git keeps
# them: the trunk's resumable checkpoint (commit 79c7f53) and the third polish's weights (commit 67f1c19).
# restore FILE COMMIT: take FILE from git history when it is missing
restore() {
  if [ ! -f "$1" ] && git cat-file -e "$2:$1" 2>/dev/null; then
    git show "$2:$1" >"$1"
  fi
}
restore_trunk() { restore weights/default_trunk.pt 79c7f53; }

# polish_cycle OUT INIT STEPS DROP [ARGS]: one 256x256 cycle from INIT's weights, Adam 1e-4 then 1e-5 after DROP
# steps; resumes from OUT/last.pt, else from RESUME when set (a committed resumable checkpoint of an unfinished cycle,
# such as weights/default_resume.pt)
polish_cycle() {
  local out="$1" init="$2" steps="$3" drop="$4"
  shift 4
  local start=(--init "$init")
  if [ ! -f "$out/last.pt" ] && [ -n "${RESUME:-}" ]; then
    mkdir -p "$out" && cp "$RESUME" "$out/last.pt"
  fi
  if [ -f "$out/last.pt" ]; then start=(--resume "$out/last.pt"); fi
  exec "$PYTHON" -m model_export train "${data[@]}" "${machine[@]}" "${start[@]}" \
    --input-size 256 --batch-size 16 --optimizer adam --lr 1e-4 --lr-milestones "$drop" \
    --lr-gamma 0.1 --max-steps "$steps" --checkpoint-every 100 --out "$out" "$@"
}

case "$STAGE" in
  trunk)
    restore_trunk
    start=(--init weights/synthetic_init.pt)
    if [ -f "$RUNS/trunk/last.pt" ]; then
      start=(--resume "$RUNS/trunk/last.pt")
    elif [ -f weights/default_trunk.pt ]; then
      mkdir -p "$RUNS/trunk" && cp weights/default_trunk.pt "$RUNS/trunk/last.pt"
      start=(--resume "$RUNS/trunk/last.pt")
    fi
    exec "$PYTHON" -m model_export train "${data[@]}" "${machine[@]}" "${start[@]}" \
      --input-size 128 --batch-size 16 --optimizer adam --lr 1e-3 --seed 0 \
      --lr-milestones "${TRUNK_DROP:-10001}" --lr-gamma 0.1 --max-steps "${TRUNK_STEPS:-11500}" \
      --checkpoint-every 250 --out "$RUNS/trunk" "$@"
    ;;
  finish)
    restore_trunk
    steps="${FINISH_STEPS:-2800}"
    drop="${FINISH_DROP:-2250}"
    start=(--init "${TRUNK:-weights/default_trunk.pt}")
    if [ -f "$RUNS/finish/last.pt" ]; then start=(--resume "$RUNS/finish/last.pt"); fi
    exec "$PYTHON" -m model_export train "${data[@]}" "${machine[@]}" "${start[@]}" \
      --input-size 256 --batch-size 16 --optimizer adam --lr 2.5e-4 --lr-milestones "$drop" --lr-gamma 0.1 \
      --max-steps "$steps" --seed 1 --checkpoint-every 100 --out "$RUNS/finish" "$@"
    ;;
  polish)
    polish_cycle "$RUNS/polish" "${FINISH:-$RUNS/finish/last.pt}" "${POLISH_STEPS:-2400}" "${POLISH_DROP:-1800}" \
      --seed 2 "$@"
    ;;
  deepen)
    [ -n "${FROM:-}" ] || restore weights/default_next.pt 67f1c19
    if [ ! -f "$RUNS/deepen/init.pt" ]; then
      mkdir -p "$RUNS/deepen"
      "$PYTHON" -m model_export deepen --checkpoint "${FROM:-weights/default_next.pt}" --stacks 3 \
        --out "$RUNS/deepen/init.pt"
    fi
    polish_cycle "$RUNS/deepen" "$RUNS/deepen/init.pt" "${DEEPEN_STEPS:-2200}" "${DEEPEN_DROP:-1600}" --seed 5 "$@"
    ;;
  everyday)
    polish_cycle "$RUNS/everyday" "${FROM:-weights/default.pt}" "${EVERYDAY_STEPS:-2000}" "${EVERYDAY_DROP:-1500}" \
      --dataset "${EVERYDAY_MIX:-lsp:2,lspet:5,mpii:2,coco:1.5,synthetic:0.5}" --truncate-prob 0.3 \
      --occlusion-prob 0.4 --whole-image-prob 0.2 --seed 7 "$@"
    ;;
  ship)
    last="$RUNS/deepen/last.pt"
    [ -f "$last" ] || last="$RUNS/polish/last.pt"
    [ -f "$last" ] || last="$RUNS/finish/last.pt"
    ckpt="${1:-$last}"
    scripts/ship_default.sh "$ckpt"
    ;;
  *)
    echo "usage: scripts/train_default.sh trunk|finish|polish|deepen|everyday|ship [ARGS]" >&2
    exit 2
    ;;
esac
