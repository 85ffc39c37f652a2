#!/usr/bin/env bash
# Two-level dSAGA, the hub's default for dsaga (docs/ALGORITHM.md section 7), end to end: real
# hub and agent processes on tcp://127.0.0.1, every option at its default, label-sorted
# (non-IID) shards. Two problems:
#   1. 2500 Fashion-MNIST test images, d = 785 (> 256), 5 agents, lambda 1e-4: the hub builds a
#      coarse space from the eigenvectors the agents upload, and the agents run local steps
#      outside it;
#   2. a small dense problem made here (2000 rows, 40 features of scales 1 to e^-5 plus the bias,
#      labels from a noisy linear model), d = 41 <= 256, 4 agents: the coarse space is the whole
#      space, so each round is an exact distributed Newton step and the agents take no local
#      steps.
# Checks, for each: every process exits 0; the hub log names the coarse space it chose; the hub
# stops at the target (F* from dsaga-reference on the same data) and the last metrics row is at
# or below it; F never exceeds its starting value (round 0, w = 0) in metrics.csv; the invariant
# gbar == sum_k S_k / N held at every round (to 1e-12). The whole-space run must also take no
# local steps (the local_steps column counts gradients: the whole-table refresh is N of them, so
# N per round means no step beyond it) and converge like Newton's method (1e-10 within 15
# rounds).
# Usage: train_two_level.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

# run NAME K LAMBDA TARGET MAX_ROUNDS DATA...: F*, then a hub with K agents (shard k each, by
# label); metrics in NAME.csv, logs in NAME-*.log.
run() {
  local name=$1 k=$2 lambda=$3 target=$4 max_rounds=$5; shift 5
  local data=("$@")
  "$REFERENCE" "${data[@]}" --lambda "$lambda" --quiet --output "$WORK/$name.fstar" >/dev/null ||
    fail "$name: dsaga-reference failed"
  "$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/$name.endpoint" --agents "$k" \
    --lambda "$lambda" --f-star "$(cat "$WORK/$name.fstar")" --target "$target" \
    --max-rounds "$max_rounds" --metrics "$WORK/$name.csv" --no-progress >"$WORK/$name-hub.log" 2>&1 &
  local hub=$!; PIDS+=($hub)
  wait_for_file "$WORK/$name.endpoint" 20
  local endpoint; endpoint=$(cat "$WORK/$name.endpoint")
  local agents=() i
  for i in $(seq 0 $((k - 1))); do
    "$AGENT" --hub "$endpoint" --id "agent-$i" "${data[@]}" --shards "$k" --shard "$i" \
      --partition by-label --give-up 60 >"$WORK/$name-agent-$i.log" 2>&1 &
    agents+=($!); PIDS+=($!)
  done
  wait_pid $hub 120 || fail "$name: hub exited with status $?"
  for i in "${agents[@]}"; do wait_pid "$i" 30 || fail "$name: agent $i exited with status $?"; done
  grep -q 'target relative suboptimality' "$WORK/$name-hub.log" || fail "$name: hub did not stop at the target"
}

# check NAME TARGET MAX_ROUNDS MAX_GRADIENTS: the metrics of run NAME (columns found by name);
# MAX_GRADIENTS bounds the local_steps column (refreshed table entries plus local steps).
check() {
  awk -F, -v name="$1" -v target="$2" -v max_rounds="$3" -v max_steps="$4" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  {
    r = $col["round"]; f = $col["objective"]; s = $col["suboptimality"]
    if (NR == 2) f0 = f
    if (f == "nan" || f == "") { print "FAIL: " name ": no objective at round " r; bad = 1 }
    else if (f + 0 > f0 + 0) { printf "FAIL: %s: F = %.17g at round %d, above F0 = %.17g\n", name, f, r, f0; bad = 1 }
    if ($col["invariant_error"] + 0 > inv) inv = $col["invariant_error"] + 0
    if ($col["local_steps"] + 0 > steps) steps = $col["local_steps"] + 0
    if ("reverted" in col) reverts += $col["reverted"]
  }
  END {
    printf "%s: %d rounds, F0 %.17g, final F %.17g, (F-F*)/F* %s, max invariant error %.3g, " \
           "max gradients per round %d, guard reverts %d\n", name, r, f0, f, s, inv, steps, reverts
    if (!(s + 0 <= target + 0)) { print "FAIL: " name ": final suboptimality above " target; bad = 1 }
    if (r + 0 > max_rounds + 0) { print "FAIL: " name ": more than " max_rounds " rounds"; bad = 1 }
    if (r + 0 < 2) { print "FAIL: " name ": fewer than 2 rounds"; bad = 1 }
    if (!(inv <= 1e-12)) { print "FAIL: " name ": invariant error above 1e-12"; bad = 1 }
    if (steps > max_steps + 0) { print "FAIL: " name ": more than " max_steps " gradients in a round"; bad = 1 }
    exit bad
  }' "$WORK/$1.csv" || fail "$1: metrics check"
}

# 1. d = 785: a coarse space of m directions, local runs outside it.
FMNIST=(--format fashion-mnist --split test --limit 2500 --scale 0.00392156862745098 --normalize
        --bias --positive 0,2,4,6)
run coarse 5 1e-4 1e-8 300 "${FMNIST[@]}"
grep -E 'two-level: coarse space of m = [0-9]+ directions' "$WORK/coarse-hub.log" | sed 's/.*hub: //' ||
  fail "coarse: the hub log does not name the two-level coarse space"
check coarse 1e-8 300 5000  # the refresh (2500) and one local epoch (2500)

# 2. d = 41: the whole space, exact distributed Newton steps, no local runs.
awk -v n=2000 -v d=40 'BEGIN {
  srand(7); pi = 3.141592653589793
  for (j = 1; j <= d; j++) { s[j] = exp(-(j - 1) / 8); w[j] = sin(j) }
  for (i = 0; i < n; i++) {
    z = 0; line = ""
    for (j = 1; j <= d; j++) {
      x = s[j] * sqrt(-2 * log(1 - rand())) * cos(2 * pi * rand()); z += w[j] * x
      line = line sprintf(",%.6g", x)
    }
    print ((z + 0.3 * sqrt(-2 * log(1 - rand())) * cos(2 * pi * rand()) > 0) ? 1 : 0) line
  }
}' >"$WORK/dense.csv"
run whole 4 1e-3 1e-10 50 --data "$WORK/dense.csv" --bias
grep -F 'two-level: the coarse space is the whole space (d * C = 41)' "$WORK/whole-hub.log" |
  sed 's/.*hub: //' || fail "whole: the hub log does not say the coarse space is the whole space"
check whole 1e-10 15 2000  # the refresh alone
echo PASS
