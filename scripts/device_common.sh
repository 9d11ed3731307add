# Shared by the scripts that run on a lent GPU machine (scripts/device_train.sh, scripts/device_everyday.sh); sourced.

# send_back RUN: the run's log and checkpoints into $OUT (checkpoints in 15 MB parts, under what a call returns;
# reassemble with `cat NAME.pt.part-* > NAME.pt`), then the folder's listing and the training log's end
send_back() {
  local run="$1" name
  if [ -f "$run/log.csv" ]; then cp "$run/log.csv" "$OUT/"; fi
  for name in last best; do
    if [ -f "$run/$name.pt" ]; then split -b 15M -d "$run/$name.pt" "$OUT/$name.pt.part-"; fi
  done
  ls -l "$OUT"
  tail -n 5 "$OUT/train.log"
}
