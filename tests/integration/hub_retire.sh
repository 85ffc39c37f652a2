#!/usr/bin/env bash
# The operator's path for an agent that is gone for good: stop the hub (SIGTERM: training is
# not finished, state saved), retire the agent from the checkpoint (dsaga-hub --retire), start
# the hub again. The others rejoin, rebuild their tables for the smaller N and train on; the
# invariant holds at every round after the retirement.
# Usage: hub_retire.sh HUB AGENT
HUB=$1 AGENT=$2
source "$(dirname "$0")/lib.sh"

DATA=(--format fashion-mnist --split test --limit 1500 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6)
HUB_ARGS=(--agents 3 --lambda 1e-3 --no-progress --checkpoint-dir "$WORK/ckpt")
"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" "${HUB_ARGS[@]}" \
  --max-rounds 100000 --metrics "$WORK/before.csv" >"$WORK/hub1.log" 2>&1 &
HUB1=$!; PIDS+=($HUB1)
wait_for_file "$WORK/endpoint" 20
ENDPOINT=$(cat "$WORK/endpoint")
declare -A APID
for k in 0 1 2; do
  "$AGENT" --hub "$ENDPOINT" --id "agent-$k" "${DATA[@]}" --shards 3 --shard $k --heartbeat 0.3 \
    --hub-timeout 1.5 --give-up 60 >"$WORK/agent-$k.log" 2>&1 &
  APID[$k]=$!; PIDS+=($!)
done
for _ in $(seq 200); do [ "$(wc -l <"$WORK/before.csv" 2>/dev/null || echo 0)" -gt 10 ] && break; sleep 0.1; done
kill -TERM $HUB1
wait_pid $HUB1 20 || fail "hub did not stop cleanly on SIGTERM (status $?)"
grep -q "stopped at round" "$WORK/hub1.log" || fail "hub did not report the shutdown"
kill -9 "${APID[2]}"; wait "${APID[2]}" 2>/dev/null || true   # agent-2 is gone for good

"$HUB" "${HUB_ARGS[@]}" --retire agent-2 >"$WORK/retire.log" 2>&1 || fail "--retire failed"
grep -q "N goes from 1500 to 1000" "$WORK/retire.log" || fail "retire did not report the new N"

"$HUB" --listen "$ENDPOINT" "${HUB_ARGS[@]}" --max-rounds 60 --metrics "$WORK/after.csv" \
  >"$WORK/hub2.log" 2>&1 &
HUB2=$!; PIDS+=($HUB2)
wait_pid $HUB2 120 || fail "second hub exited with status $?"
for k in 0 1; do wait_pid "${APID[$k]}" 30 || fail "agent $k exited with status $?"; done
grep -q "resumed from" "$WORK/hub2.log" || fail "the hub did not resume"
awk -F, 'NR > 1 { r = $1; a = $2; if ($6 + 0 > inv) inv = $6 + 0 } END {
  printf "after retiring: rounds up to %d with %d agents, max invariant error %.3g\n", r, a, inv
  if (a != 2 || r != 60 || !(inv <= 1e-12)) exit 1 }' "$WORK/after.csv" || fail "bad run after retiring"
echo PASS
