#!/usr/bin/env bash
# A real hub and 4 real agents on tcp://127.0.0.1 (ephemeral port) train a logistic regression
# on 2000 Fashion-MNIST test images split by label (non-IID). Checks: every process exits 0,
# the final relative suboptimality against the reference solver is <= 1e-8, and the invariant
# gbar == sum_k S_k / N held at every round (to 1e-12). With PREDICT, the hub's model applied by
# dsaga-predict with the agents' data options predicts as the reference's optimum does.
# Usage: train_loopback.sh HUB AGENT REFERENCE [PREDICT]
HUB=$1 AGENT=$2 REFERENCE=$3 PREDICT=${4:-}
source "$(dirname "$0")/lib.sh"

DATA=(--format fashion-mnist --split test --limit 2000 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6)
LAMBDA=1e-3
"$REFERENCE" "${DATA[@]}" --lambda $LAMBDA --quiet --output "$WORK/fstar" --model "$WORK/ref.txt" >/dev/null
FSTAR=$(cat "$WORK/fstar")
echo "F* = $FSTAR"

"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 4 --lambda $LAMBDA \
  --f-star "$FSTAR" --target 1e-9 --max-rounds 1000 --metrics "$WORK/metrics.csv" \
  --model "$WORK/model.txt" --no-progress >"$WORK/hub.log" 2>&1 &
HUB_PID=$!; PIDS+=($HUB_PID)
wait_for_file "$WORK/endpoint" 20
ENDPOINT=$(cat "$WORK/endpoint")
echo "hub at $ENDPOINT"
AGENT_PIDS=()
for k in 0 1 2 3; do
  "$AGENT" --hub "$ENDPOINT" --id "agent-$k" "${DATA[@]}" --shards 4 --shard $k \
    --partition by-label --give-up 60 >"$WORK/agent-$k.log" 2>&1 &
  AGENT_PIDS+=($!); PIDS+=($!)
done

wait_pid $HUB_PID 240 || fail "hub exited with status $?"
for p in "${AGENT_PIDS[@]}"; do wait_pid "$p" 30 || fail "agent $p exited with status $?"; done

# round,agents,participants,objective,suboptimality,invariant_error,...
awk -F, 'NR > 1 {
  rounds = $1; sub_ = $5; if ($6 + 0 > inv) inv = $6 + 0
} END {
  printf "rounds %d, final (F-F*)/F* %s, max invariant error %.3g\n", rounds, sub_, inv
  if (!(sub_ + 0 <= 1e-8)) { print "FAIL: suboptimality above 1e-8"; exit 1 }
  if (!(inv <= 1e-12)) { print "FAIL: invariant error above 1e-12"; exit 1 }
  if (rounds < 2) { print "FAIL: fewer than 2 rounds"; exit 1 }
}' "$WORK/metrics.csv"
grep -q '^format dsaga-model-2' "$WORK/model.txt" || fail "no model written"
grep -q 'target relative suboptimality' "$WORK/hub.log" || fail "hub did not stop at the target"
if [ -n "$PREDICT" ]; then
  "$PREDICT" --model "$WORK/model.txt" "${DATA[@]}" --output "$WORK/hub.pred" -q >"$WORK/hub.eval" ||
    fail "dsaga-predict on the hub's model failed"
  "$PREDICT" --model "$WORK/ref.txt" "${DATA[@]}" --output "$WORK/ref.pred" -q >"$WORK/ref.eval" ||
    fail "dsaga-predict on the reference's model failed"
  cat "$WORK/hub.eval"
  # (F-F*)/F* <= 1e-8: the two models differ in rows whose margin is ~0 only, if any.
  differ=$(paste "$WORK/hub.pred" "$WORK/ref.pred" | awk '$1 != $2' | wc -l)
  [ "$differ" -le 2 ] || fail "the hub's model predicts $differ of 2000 rows unlike the reference's"
  awk '$1 == "log-loss" { print $2 }' "$WORK/hub.eval" "$WORK/ref.eval" | paste - - |
    awk '{ d = ($1 - $2) / $2; if (!(d * d <= 1e-12)) exit 1 }' ||
    fail "log loss: hub $(grep log-loss "$WORK/hub.eval"), reference $(grep log-loss "$WORK/ref.eval")"
fi
echo PASS
