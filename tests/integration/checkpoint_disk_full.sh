#!/usr/bin/env bash
# The checkpoint's file system fills mid-run: the hub's checkpoint directory is a small tmpfs,
# filled once training is under way. The hub must hold its acknowledgements, retry, and after
# --checkpoint-retry seconds stop with status 1 and an error naming the directory and the OS
# error; a hub started on the same directory once space is back resumes from the last saved
# round, and the waiting agents train on with it to the target. (That no acknowledged update
# is lost is shown in-process, tests/unit/service_test.cpp DiskFullMidRunLosesNothingAcknowledged.)
# Needs root and mount -t tmpfs; exits 77 (skipped) without them.
# Usage: checkpoint_disk_full.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

CKPT="$WORK/ckpt"
mkdir -p "$CKPT"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=512k dsaga-test "$CKPT" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs (needs root and mount permission)"
  exit 77
fi
# Unmounted before lib.sh's cleanup removes $WORK.
unmount_then_cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  umount "$CKPT" 2>/dev/null || umount -l "$CKPT" 2>/dev/null || true
  (exit $rc)
  cleanup
}
trap unmount_then_cleanup EXIT

# 400 rows, d = 12, labels from a noisy linear rule.
awk 'BEGIN { srand(7); for (i = 0; i < 400; i++) { line = ""; s = 0
  for (k = 1; k <= 12; k++) { v = rand() * 2 - 1; s += v * (k % 4 - 1.5); line = line " " k ":" v }
  print (s + 0.3 * (rand() - 0.5) > 0 ? 1 : -1) line } }' >"$WORK/data.svm"
LAMBDA=1e-2
FSTAR=$("$REFERENCE" --data "$WORK/data.svm" --lambda $LAMBDA --quiet)
COMMON=(--agents 2 --lambda $LAMBDA --aggregation mean --checkpoint-dir "$CKPT" --no-progress)

# No target: the first hub trains until its disk is full.
"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" "${COMMON[@]}" \
  --max-rounds 10000000 --checkpoint-retry 2 --metrics "$WORK/first.csv" >"$WORK/hub1.log" 2>&1 &
HUB1=$!; PIDS+=($HUB1)
wait_for_file "$WORK/endpoint" 20
ENDPOINT=$(cat "$WORK/endpoint")
AGENT_PIDS=()
for k in 0 1; do
  "$AGENT" --hub "$ENDPOINT" --id "agent-$k" --data "$WORK/data.svm" --shards 2 --shard $k \
    --heartbeat 0.5 --hub-timeout 2 --give-up 60 >"$WORK/agent-$k.log" 2>&1 &
  AGENT_PIDS+=($!); PIDS+=($!)
done
for _ in $(seq 200); do [ "$(wc -l <"$WORK/first.csv" 2>/dev/null || echo 0)" -gt 5 ] && break; sleep 0.1; done
[ "$(wc -l <"$WORK/first.csv")" -gt 5 ] || fail "the first hub did not train"
saved_before=$(ls "$CKPT" | sed -n 's/^hub-0*\([0-9][0-9]*\)\.ckpt$/\1/p' | sort -n | tail -1)
# Until ENOSPC, and again while the hub lives: it writes a checkpoint before it removes the
# oldest, so a fill that lands between the two leaves it one file's room, which it then reuses
# round after round (seen under load: the hub never failed).
dd if=/dev/zero of="$CKPT/filler" bs=4k 2>/dev/null || true
echo "disk filled; round $saved_before was saved before"
for i in $(seq 150); do
  kill -0 $HUB1 2>/dev/null || break
  dd if=/dev/zero of="$CKPT/filler-$i" bs=4k 2>/dev/null || true
  sleep 0.2
done

rc=0
wait_pid $HUB1 30 || rc=$?
[ $rc -eq 1 ] || fail "the hub on a full disk exited with status $rc, expected 1"
grep -q "acknowledgements are held" "$WORK/hub1.log" || fail "the hub did not say it held acknowledgements"
grep "could not be saved" "$WORK/hub1.log" >"$WORK/error.txt" || fail "the hub gave no reason"
grep -q "No space left on device" "$WORK/error.txt" || fail "the hub's error does not give the OS error"
grep -qF "$CKPT" "$WORK/error.txt" || fail "the hub's error does not name the checkpoint directory"
for p in "${AGENT_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || fail "agent $p did not wait for a hub"; done

# Space is back: a new hub on the same directory resumes and the agents train to the target.
rm -f "$CKPT"/filler*
"$HUB" --listen "$ENDPOINT" "${COMMON[@]}" --f-star "$FSTAR" --target 1e-6 --max-rounds 10000000 \
  --metrics "$WORK/second.csv" >"$WORK/hub2.log" 2>&1 &
HUB2=$!; PIDS+=($HUB2)
wait_pid $HUB2 90 || fail "the resumed hub exited with status $?"
for p in "${AGENT_PIDS[@]}"; do wait_pid "$p" 30 || fail "agent $p exited with status $?"; done
resumed=$(sed -n 's/.*resumed from .*: round \([0-9]*\),.*/\1/p' "$WORK/hub2.log")
[ -n "$resumed" ] || fail "the second hub did not resume from the checkpoint"
[ "$resumed" -ge "${saved_before:-1}" ] ||
  fail "resumed at round $resumed, but round $saved_before was saved before the disk filled"
echo "resumed at round $resumed (round $saved_before saved before the disk filled)"
echo PASS
