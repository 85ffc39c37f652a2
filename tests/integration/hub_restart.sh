#!/usr/bin/env bash
# Agents keep going across a hub crash: the hub is killed with SIGKILL mid-training and a new
# hub is started on the same endpoint. The agents notice (no answer), reconnect, join again,
# rebuild their tables for the new hub and train to the target. (The new hub starts from
# scratch: hub checkpoints are a separate feature.)
# Usage: hub_restart.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

DATA=(--format fashion-mnist --split test --limit 1200 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6)
LAMBDA=1e-2
FSTAR=$("$REFERENCE" "${DATA[@]}" --lambda $LAMBDA --quiet)

"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 2 --lambda $LAMBDA \
  --max-rounds 100000 --metrics "$WORK/first.csv" --no-progress >"$WORK/hub1.log" 2>&1 &
HUB1=$!; PIDS+=($HUB1)
wait_for_file "$WORK/endpoint" 20
ENDPOINT=$(cat "$WORK/endpoint")
AGENT_PIDS=()
for k in 0 1; do
  "$AGENT" --hub "$ENDPOINT" --id "agent-$k" "${DATA[@]}" --shards 2 --shard $k --heartbeat 0.5 \
    --hub-timeout 2 --give-up 60 >"$WORK/agent-$k.log" 2>&1 &
  AGENT_PIDS+=($!); PIDS+=($!)
done
# Let training run for a while, then crash the hub.
for _ in $(seq 200); do [ "$(wc -l <"$WORK/first.csv" 2>/dev/null || echo 0)" -gt 20 ] && break; sleep 0.1; done
[ "$(wc -l <"$WORK/first.csv")" -gt 20 ] || fail "the first hub did not train"
kill -9 $HUB1
wait $HUB1 2>/dev/null || true
echo "first hub killed after $(($(wc -l <"$WORK/first.csv") - 1)) rounds"

"$HUB" --listen "$ENDPOINT" --agents 2 --lambda $LAMBDA --f-star "$FSTAR" --target 1e-8 \
  --max-rounds 2000 --metrics "$WORK/second.csv" --no-progress >"$WORK/hub2.log" 2>&1 &
HUB2=$!; PIDS+=($HUB2)
wait_pid $HUB2 120 || fail "second hub exited with status $?"
for p in "${AGENT_PIDS[@]}"; do wait_pid "$p" 30 || fail "agent $p exited with status $?"; done
grep -q "reconnecting\|joining again" "$WORK"/agent-*.log || fail "agents did not notice the crash"
awk -F, 'NR > 1 { s = $5; r = $1 } END {
  printf "second hub: %d rounds, final (F-F*)/F* %s\n", r, s
  if (!(s + 0 <= 1e-8)) exit 1 }' "$WORK/second.csv" || fail "did not converge after the restart"
echo PASS
