#!/usr/bin/env bash
# Asynchronous aggregation end to end: a real hub (--aggregation async) and 4 real agents on
# tcp://127.0.0.1 train on 2000 Fashion-MNIST test images split by label. Each update is
# applied alone and answered alone, so the agents drift out of step and an update typically
# starts 1 to 3 updates behind the model it lands on.
# Checks: every process exits 0; F at the evaluation points reaches the reference optimum to
# <= 1e-8 relative (a double-counted dS would move SAGA's fixed point away from it); the
# invariant gbar == sum_k S_k / N held at every round (to 1e-12); rounds counted updates; and a
# second run with max_staleness = 1 reports dropped steps in its metrics (stale_dropped) while
# its invariant still holds.
# Usage: train_async.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

DATA=(--format fashion-mnist --split test --limit 2000 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6)
LAMBDA=1e-3
"$REFERENCE" "${DATA[@]}" --lambda $LAMBDA --quiet --output "$WORK/fstar" >/dev/null
FSTAR=$(cat "$WORK/fstar")
echo "F* = $FSTAR"

# run NAME MAX_STALENESS TARGET MAX_ROUNDS
run() {
  local name=$1
  "$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/$name.endpoint" --agents 4 \
    --lambda $LAMBDA --aggregation async --max-staleness "$2" --f-star "$FSTAR" --target "$3" \
    --max-rounds "$4" --metrics "$WORK/$name.csv" --no-progress >"$WORK/$name-hub.log" 2>&1 &
  local hub=$!; PIDS+=($hub)
  wait_for_file "$WORK/$name.endpoint" 20
  local endpoint; endpoint=$(cat "$WORK/$name.endpoint")
  local agents=()
  for k in 0 1 2 3; do
    "$AGENT" --hub "$endpoint" --id "agent-$k" "${DATA[@]}" --shards 4 --shard $k \
      --partition by-label --give-up 60 >"$WORK/$name-agent-$k.log" 2>&1 &
    agents+=($!); PIDS+=($!)
  done
  wait_pid $hub 240 || fail "$name: hub exited with status $?"
  for p in "${agents[@]}"; do wait_pid "$p" 30 || fail "$name: agent $p exited with status $?"; done
}

run converge 0 1e-9 1000
# round,agents,participants,objective,suboptimality,invariant_error,round_seconds,elapsed,
# local_steps,late_updates,bytes_in,bytes_out,bytes_per_agent,updates,stale_dropped
awk -F, 'NR == 1 { if ($14 != "updates" || $15 != "stale_dropped") { print "FAIL: header " $0; exit 1 } }
NR > 2 {
  rounds = $1; sub_ = $5; if ($6 + 0 > inv) inv = $6 + 0; updates += $14
  if ($14 + 0 < 4) { print "FAIL: round " $1 " closed after " $14 " updates (4 agents)"; exit 1 }
} END {
  printf "async: rounds %d, updates %d, final (F-F*)/F* %s, max invariant error %.3g\n", rounds, updates, sub_, inv
  if (!(sub_ + 0 <= 1e-8)) { print "FAIL: suboptimality above 1e-8"; exit 1 }
  if (!(inv <= 1e-12)) { print "FAIL: invariant error above 1e-12"; exit 1 }
  if (rounds < 2) { print "FAIL: fewer than 2 rounds"; exit 1 }
}' "$WORK/converge.csv" || fail "async run"
grep -q 'target relative suboptimality' "$WORK/converge-hub.log" || fail "hub did not stop at the target"

run stale 1 0 8
awk -F, 'NR > 1 { dropped += $15; if ($6 + 0 > inv) inv = $6 + 0 } END {
  printf "max_staleness 1: %d steps dropped in 8 rounds, max invariant error %.3g\n", dropped, inv
  if (dropped < 1) { print "FAIL: no update was too stale with max_staleness 1 and 4 agents"; exit 1 }
  if (!(inv <= 1e-12)) { print "FAIL: invariant error above 1e-12"; exit 1 }
}' "$WORK/stale.csv" || fail "stale run"
grep -q 'dw is dropped' "$WORK/stale-hub.log" || fail "the hub did not log the dropped steps"
echo PASS
