#!/usr/bin/env bash
# A natural LIBSVM split through the real daemons: three agents whose files are as wide as their
# own highest feature index (30, 21 and 12), none told --features, each with a --bias column.
# Checks: the hub makes the model as wide as the widest agent and says how many agents are
# narrower, every process exits 0, and training reaches (F-F*)/F* <= 1e-8 against the reference
# solver on the union of the files (whose width is the widest one's).
# Usage: train_natural_split.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

# 150 rows per file, features 1..WIDTH (the last one always present, so the file's width is
# WIDTH), values from a fixed linear congruential sequence, labels from a fixed linear rule.
make_shard() {
  awk -v width="$1" -v seed="$2" 'BEGIN {
    s = seed
    for (i = 0; i < 150; i++) {
      line = ""; margin = 0
      for (j = 1; j <= width; j++) {
        s = (s * 1103515245 + 12345) % 2147483648
        if (j < width && s % 3 != 0) continue
        v = (s % 2000) / 1000 - 1
        margin += v * ((j * 7) % 5 - 2)
        line = line " " j ":" v
      }
      print (margin >= 0 ? 1 : -1) line
    }
  }'
}
make_shard 30 1 >"$WORK/a.svm"
make_shard 21 2 >"$WORK/b.svm"
make_shard 12 3 >"$WORK/c.svm"
cat "$WORK/a.svm" "$WORK/b.svm" "$WORK/c.svm" >"$WORK/all.svm"

LAMBDA=1e-2
"$REFERENCE" --data "$WORK/all.svm" --bias --lambda $LAMBDA --quiet --output "$WORK/fstar" >/dev/null
FSTAR=$(cat "$WORK/fstar")
echo "F* = $FSTAR"

"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 3 --lambda $LAMBDA \
  --f-star "$FSTAR" --target 1e-8 --max-rounds 300 --metrics "$WORK/metrics.csv" \
  --no-progress >"$WORK/hub.log" 2>&1 &
HUB_PID=$!; PIDS+=($HUB_PID)
wait_for_file "$WORK/endpoint" 20
ENDPOINT=$(cat "$WORK/endpoint")
AGENT_PIDS=()
for k in a b c; do
  "$AGENT" --hub "$ENDPOINT" --id "agent-$k" --data "$WORK/$k.svm" --bias --give-up 60 \
    >"$WORK/agent-$k.log" 2>&1 &
  AGENT_PIDS+=($!); PIDS+=($!)
done
wait_pid $HUB_PID 120 || fail "hub exited with status $?"
for p in "${AGENT_PIDS[@]}"; do wait_pid "$p" 30 || fail "agent $p exited with status $?"; done

grep -q "the model has 31 features (the widest agent's); 2 narrower agents" "$WORK/hub.log" ||
  fail "the hub did not take the widest agent's width: $(grep -m1 'model has' "$WORK/hub.log")"
grep -q "the model has 31 features, this data 13" "$WORK/agent-c.log" ||
  fail "agent c did not widen its data"
awk -F, 'NR > 1 { rounds = $1; sub_ = $5 } END {
  printf "rounds %d, final (F-F*)/F* %s\n", rounds, sub_
  if (!(sub_ + 0 <= 1e-8)) { print "FAIL: suboptimality above 1e-8"; exit 1 }
}' "$WORK/metrics.csv"
echo PASS
