#!/usr/bin/env bash
# Held-out validation end to end (issue 16): a real hub and 4 real agents train on 2000
# Fashion-MNIST training images split by label, keeping validation rows they never train on, in
# each aggregation mode. The hub's validation counts at the round of the model it saves must be
# dsaga-predict's on that model and the same rows: equal rows and correct predictions, log loss
# to 1e-12, AUC within the bound the hub reports.
#   1. two-level (the default): --validation, the Fashion-MNIST test split (10,000 rows, cut
#      into the same 4 shards); every round has counts and a gradient norm.
#   2. async: --holdout 0.2 --holdout-seed 3 of each agent's 500 rows (dsaga-predict --holdout
#      picks the same rows).
#   3. mean: --validation with --eval-every 2: odd rounds show nothing (nan), even rounds counts.
# And bad input: a fraction outside (0, 1) and a validation file of another width are refused
# with the field named.
# Usage: train_validation.sh HUB AGENT PREDICT
HUB=$1 AGENT=$2 PREDICT=$3
source "$(dirname "$0")/lib.sh"

FMNIST=/usr/share/datasets/fashion-mnist
TRANSFORM=(--scale 0.00392156862745098 --normalize --bias --positive 0,2,4,6)
DATA=(--format fashion-mnist --split train --limit 2000 "${TRANSFORM[@]}")
SHARDS=(--shards 4 --partition by-label)

# run NAME ROUNDS "HUB OPTIONS" "AGENT OPTIONS": trains, leaves $WORK/NAME.{csv,model,log}.
run() {
  local name=$1 rounds=$2 hub_opts=$3 agent_opts=$4 k
  rm -f "$WORK/endpoint"
  # shellcheck disable=SC2086  # the option strings are word lists
  "$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 4 --lambda 1e-3 \
    --max-rounds "$rounds" --metrics "$WORK/$name.csv" --model "$WORK/$name.model" $hub_opts \
    >"$WORK/$name-hub.log" 2>&1 &
  local hub_pid=$!; PIDS+=($hub_pid)
  wait_for_file "$WORK/endpoint" 20
  local agents=()
  for k in 0 1 2 3; do
    # shellcheck disable=SC2086
    "$AGENT" --hub "$(cat "$WORK/endpoint")" --id "agent-$k" "${DATA[@]}" "${SHARDS[@]}" \
      --shard $k --give-up 60 $agent_opts >"$WORK/$name-agent-$k.log" 2>&1 &
    agents+=($!); PIDS+=($!)
  done
  # An agent that cannot start (a bad option) fails the test now, not at the hub's timeout.
  local i=0 running=("${agents[@]}") left
  while kill -0 $hub_pid 2>/dev/null; do
    left=()
    for k in "${running[@]}"; do
      if kill -0 "$k" 2>/dev/null; then left+=("$k"); else wait "$k" || fail "$name: agent $k exited with status $?"; fi
    done
    running=("${left[@]}")
    i=$((i + 1)); [ $i -gt 1200 ] && fail "$name: the hub still runs after 120 s"
    sleep 0.1
  done
  wait_pid $hub_pid 1 || fail "$name: hub exited with status $?"
  for k in "${running[@]}"; do wait_pid "$k" 30 || fail "$name: agent $k exited with status $?"; done
}

# column NAME CSV ROUND: the value of column NAME (by the header) in ROUND's line.
column() {
  awk -F, -v name="$1" -v round="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i }
    NR > 1 && $1 == round { print $c }' "$2"
}

# check NAME PREDICT_OUTPUT: the hub's counts at the model's round against dsaga-predict's.
check() {
  local name=$1 eval=$2 round examples correct loss auc auc_error
  round=$(awk '$1 == "round" { print $2 }' "$WORK/$name.model")
  examples=$(column val_examples "$WORK/$name.csv" "$round")
  correct=$(column val_correct "$WORK/$name.csv" "$round")
  loss=$(column val_loss "$WORK/$name.csv" "$round")
  auc=$(column val_auc "$WORK/$name.csv" "$round")
  auc_error=$(column val_auc_error "$WORK/$name.csv" "$round")
  echo "$name: model of round $round; hub: $correct of $examples right, loss $loss, auc $auc" \
       "(+-$auc_error); dsaga-predict: $(tr '\n' ' ' <<<"$eval")"
  local p_correct p_rows p_loss p_auc
  read -r p_correct p_rows < <(awk '$1 == "accuracy" { gsub(/[()]/, "", $3); split($3, a, "/"); print a[1], a[2] }' <<<"$eval")
  p_loss=$(awk '$1 == "log-loss" { print $2 }' <<<"$eval")
  p_auc=$(awk '$1 == "auc" { print $2 }' <<<"$eval")
  [ "$examples" = "$p_rows" ] || fail "$name: the hub counted $examples validation rows, dsaga-predict $p_rows"
  [ "$correct" = "$p_correct" ] || fail "$name: the hub counted $correct right, dsaga-predict $p_correct"
  awk -v a="$loss" -v b="$p_loss" 'BEGIN { d = (a - b) / b; exit !(d * d <= 1e-24) }' ||
    fail "$name: validation loss $loss, dsaga-predict's log loss $p_loss"
  awk -v a="$auc" -v b="$p_auc" -v e="$auc_error" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= e + 1e-12 && e < 0.01) }' ||
    fail "$name: AUC $auc +- $auc_error, dsaga-predict's $p_auc"
}

# 1. two-level, a validation file of its own.
run two-level 6 "" "--validation $FMNIST"
check two-level "$("$PREDICT" --model "$WORK/two-level.model" --format fashion-mnist --split test \
                   "${TRANSFORM[@]}" -q)" || exit 1
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 == 0 { if ($col["val_examples"] != "nan") { print "FAIL: round 0 has validation counts"; exit 1 } next }
  { if ($col["val_examples"] != 10000) { print "FAIL: round " $1 " has " $col["val_examples"] " validation rows"; exit 1 }
    g = $col["gradient_norm"]; if (!(g + 0 > 0)) { print "FAIL: round " $1 " gradient norm " g; exit 1 } }' \
  "$WORK/two-level.csv" || fail "two-level: every round should have 10000 validation rows and a gradient norm"
grep -q 'val: loss=.* acc=.* auc=.* (10000 rows)' "$WORK/two-level-hub.log" ||
  fail "two-level: no validation figures in the progress line"

# 2. async, a held-out fraction: dsaga-predict --holdout takes each agent's held-out rows.
run async 6 "--aggregation async" "--holdout 0.2 --holdout-seed 3"
evals=""
for k in 0 1 2 3; do
  evals+=$("$PREDICT" --model "$WORK/async.model" "${DATA[@]}" "${SHARDS[@]}" --shard $k \
            --holdout 0.2 --holdout-seed 3 --output "$WORK/async-$k.pred" -q)$'\n'
done
# Counts add up over the shards; log loss and AUC are checked on all rows at once below.
sum=$(awk '$1 == "accuracy" { gsub(/[()]/, "", $3); split($3, a, "/"); c += a[1]; n += a[2] }
  END { printf "accuracy %.6f (%d/%d)\n", c / n, c, n }' <<<"$evals")
round=$(awk '$1 == "round" { print $2 }' "$WORK/async.model")
[ "$(column val_examples "$WORK/async.csv" "$round")" = 400 ] ||
  fail "async: $(column val_examples "$WORK/async.csv" "$round") validation rows at round $round, expected 4 x 100"
[ "$(column val_correct "$WORK/async.csv" "$round")" = "$(awk '{ gsub(/[()]/, "", $3); split($3, a, "/"); print a[1] }' <<<"$sum")" ] ||
  fail "async: the hub counted $(column val_correct "$WORK/async.csv" "$round") right, dsaga-predict $sum"
echo "async: model of round $round; hub: $(column val_correct "$WORK/async.csv" "$round") of 400 right; dsaga-predict: $sum"
grep -q 'validation: 100 rows of .*held out 100 rows, seed 3' "$WORK/async-agent-0.log" ||
  fail "async: the agent does not say what it holds out"
# The agents train on the other 400 rows each: N = 1600.
grep -q 'training: N = 1600,' "$WORK/async-hub.log" || fail "async: the hub's N is not 1600"

# 3. mean, every other round.
run mean 4 "--aggregation mean" "--validation $FMNIST --eval-every 2"
check mean "$("$PREDICT" --model "$WORK/mean.model" --format fashion-mnist --split test \
              "${TRANSFORM[@]}" -q)" || exit 1
for r in 1 3; do
  [ "$(column val_examples "$WORK/mean.csv" $r)" = nan ] || fail "mean: round $r has validation counts"
done
[ "$(column val_examples "$WORK/mean.csv" 2)" = 10000 ] || fail "mean: round 2 has no counts"
[ "$(column gradient_norm "$WORK/mean.csv" 2)" = nan ] || fail "mean: a gradient norm it cannot know"

# Bad input: refused before joining, the field named.
rc=0; "$AGENT" --hub tcp://127.0.0.1:1 "${DATA[@]}" --holdout 1.5 >"$WORK/bad1.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q 'validation.holdout: 1.5' "$WORK/bad1.log" || fail "--holdout 1.5: status $rc, $(cat "$WORK/bad1.log")"
printf '1,0.5,0,-2\n0,1,4,0\n1,2,1,1\n' >"$WORK/train.csv"
printf '1,0.5,0\n0,1,4\n' >"$WORK/narrow.csv"
rc=0; "$AGENT" --hub tcp://127.0.0.1:1 --data "$WORK/train.csv" --validation "$WORK/narrow.csv" \
  --give-up 1 >"$WORK/bad2.log" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "validation.path ($WORK/narrow.csv): 2 columns after the data options, the training data ($WORK/train.csv) 3" "$WORK/bad2.log" ||
  fail "a validation file of another width: status $rc, $(cat "$WORK/bad2.log")"
echo PASS
