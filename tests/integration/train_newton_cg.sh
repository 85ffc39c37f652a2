#!/usr/bin/env bash
# Newton-CG (docs/ALGORITHM.md section 7.2) end to end: real hub and agent processes on
# tcp://127.0.0.1, label-sorted shards of 2500 Fashion-MNIST test images on raw pixels / 255
# (rows not normalised: the flat-curvature regime), lambda 1e-4, 5 agents.
#   1. Every option at its default: the hub must choose Newton-CG by itself, before the first
#      round, and say why; it stops at the target (1e-8 against dsaga-reference's F*) within 15
#      outer rounds (gradient rounds) and 200 message round trips; F never exceeds its start at a
#      round that measured it; the tables are untouched (the invariant held to 1e-12 at every
#      round). d*C = 785 takes the agents' Hessians: the hub solves each Newton step itself and
#      no round is a product round.
#   2. --preconditioner diagonal (the CG of wider models, with product rounds), once through and
#      once with the hub killed (SIGKILL) twice while a CG is under way (a product round open)
#      and restarted from its checkpoint: the second run ends at the model of the first (to 1e-9
#      relative on the objective; the design gives bit-identical results).
# Usage: train_newton_cg.sh HUB AGENT REFERENCE
HUB=$1 AGENT=$2 REFERENCE=$3
source "$(dirname "$0")/lib.sh"

DATA=(--format fashion-mnist --split test --limit 2500 --scale 0.00392156862745098 --bias
      --positive 0,2,4,6)
LAMBDA=1e-4
"$REFERENCE" "${DATA[@]}" --lambda $LAMBDA --quiet --output "$WORK/fstar" >/dev/null ||
  fail "dsaga-reference failed"
HUB_ARGS=(--agents 5 --lambda $LAMBDA --f-star "$(cat "$WORK/fstar")" --target 1e-8
          --max-rounds 400 --no-progress --seed 3)

# start_hub DIR LIFE [ENDPOINT]: a hub (checkpoints in DIR/ckpt), metrics DIR/metrics-LIFE.csv,
# with HUB_ARGS and EXTRA_ARGS.
EXTRA_ARGS=()
start_hub() {
  local dir=$1 life=$2 listen=${3:-'tcp://127.0.0.1:*'}
  "$HUB" --listen "$listen" --endpoint-file "$dir/endpoint" --checkpoint-dir "$dir/ckpt" \
    --model "$dir/model.txt" --metrics "$dir/metrics-$life.csv" "${HUB_ARGS[@]}" \
    ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} >"$dir/hub-$life.log" 2>&1 &
  HUB_PID=$!; PIDS+=($HUB_PID)
}

# last_kind CSV: the kind column of the newest metrics row.
last_kind() {
  [ -f "$1" ] || return 0
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } { k = $col["kind"] } END { print k }' "$1"
}

# run NAME KILLS: a run with 5 agents; the hub is killed KILLS times just after a round that
# opened a product round. Prints the model's objective line.
run() {
  local name=$1 kills=$2 dir=$WORK/$1
  mkdir -p "$dir"
  start_hub "$dir" 0
  wait_for_file "$dir/endpoint" 20
  local endpoint; endpoint=$(cat "$dir/endpoint")
  local agents=() k i t
  for k in 0 1 2 3 4; do
    "$AGENT" --hub "$endpoint" --id "agent-$k" "${DATA[@]}" --shards 5 --shard $k \
      --partition by-label --heartbeat 0.3 --hub-timeout 1.5 --give-up 60 \
      >"$dir/agent-$k.log" 2>&1 &
    agents+=($!); PIDS+=($!)
  done
  for i in $(seq 1 "$kills"); do
    # Wait (at most 60 s) for a closed gradient round or CG step whose successor is a product
    # round: the next kind after a "gradient" row, or a "product" row, is a product round
    # unless the CG ended there; either way a CG is under way most of the time.
    for t in $(seq 1200); do
      case "$(last_kind "$dir/metrics-$((i - 1)).csv")" in gradient|product) break ;; esac
      kill -0 $HUB_PID 2>/dev/null || break
      sleep 0.05
    done
    kill -0 $HUB_PID 2>/dev/null || fail "$name: the hub finished before kill $i (make it longer)"
    kill -9 $HUB_PID; wait $HUB_PID 2>/dev/null || true
    start_hub "$dir" "$i" "$endpoint"
  done
  wait_pid $HUB_PID 180 || fail "$name: hub exited with status $?"
  for k in "${agents[@]}"; do wait_pid "$k" 60 || fail "$name: agent $k exited with status $?"; done
  grep -q 'target relative suboptimality' "$dir/hub-$kills.log" ||
    fail "$name: the hub did not stop at the target"
  grep '^objective ' "$dir/model.txt"
}

# 1. Defaults: auto picks Newton-CG.
clean=$(run clean 0)
grep -F 'Newton-CG from the start' "$WORK/clean/hub-0.log" | sed 's/.*hub: //' ||
  fail "auto did not choose Newton-CG on raw pixels"
awk -F, '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  {
    r = $col["round"]; f = $col["objective"]; kind = $col["kind"]
    if (NR == 2) f0 = f
    if ($col["invariant_error"] + 0 > inv) inv = $col["invariant_error"] + 0
    if (r == 0) next
    if ($col["mode"] != "newton-cg") { print "FAIL: round " r " ran " $col["mode"]; bad = 1 }
    if (kind == "gradient") {
      ++outer
      if (f == "nan" || f + 0 > f0 + 0) { print "FAIL: F = " f " at gradient round " r; bad = 1 }
      s = $col["suboptimality"]
    } else if (kind == "product") {
      ++products
      if (f != "nan") { print "FAIL: product round " r " measured F = " f; bad = 1 }
    } else { print "FAIL: round " r " of kind " kind; bad = 1 }
  }
  END {
    printf "newton-cg: %d rounds, %d outer, %d products, final (F-F*)/F* %s, max invariant error %.3g\n",
           r, outer, products, s, inv
    if (!(s + 0 <= 1e-8)) { print "FAIL: final suboptimality above 1e-8"; bad = 1 }
    if (outer > 15 || r > 200) { print "FAIL: more than 15 outer rounds or 200 round trips"; bad = 1 }
    if (products != 0) { print "FAIL: " products " product rounds with the Hessians"; bad = 1 }
    if (!(inv <= 1e-12)) { print "FAIL: invariant error above 1e-12"; bad = 1 }
    exit bad
  }' "$WORK/clean/metrics-0.csv" || fail "metrics check"

# 2. The diagonals' CG, through and killed mid-CG twice.
EXTRA_ARGS=(--preconditioner diagonal)
clean=$(run clean-cg 0)
products=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
                    $col["kind"] == "product" { ++n } END { print n + 0 }' "$WORK/clean-cg/metrics-0.csv")
[ "$products" -gt 0 ] || fail "no product round with --preconditioner diagonal"
killed=$(run killed 2)
resumes=$(grep -h "resumed from" "$WORK"/killed/hub-*.log | wc -l)
echo "diagonal, uninterrupted ($products products): $clean; killed twice, resumed $resumes times: $killed"
[ "$resumes" -eq 2 ] || fail "2 kills but $resumes resumes from a checkpoint"
awk -v a="${clean#objective }" -v b="${killed#objective }" 'BEGIN {
  d = (a - b) / a; if (d < 0) d = -d
  printf "relative difference %.3g\n", d
  exit !(d <= 1e-9) }' || fail "the interrupted run ended elsewhere"
echo PASS
