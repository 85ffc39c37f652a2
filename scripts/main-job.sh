#!/usr/bin/env bash
# The main job on one machine: a dsaga-hub and 8 dsaga-agent processes on 127.0.0.1 train
# problem B1 of docs/ALGORITHM.md (Fashion-MNIST, 60,000 x 785, binary logistic, lambda = 1/N)
# on label-sorted (non-IID) shards to 1e-6 relative suboptimality or the round cap, each agent
# also evaluating its shard of the 10,000 test images (held out, never trained on) every round.
# Shows progress, writes metrics and a PNG plot: suboptimality against rounds and bytes, and
# validation accuracy against rounds.
#
# The hub runs with its defaults, so this is what a user gets. On B1 that is two-level dSAGA
# (docs/ALGORITHM.md section 7). Each round every agent recomputes its whole SAGA table at the
# broadcast w and sends its gradient and Hessian in a small coarse space U (built once from the
# agents' Gram eigenvectors; the hub log names it), then runs one local epoch with the table
# held; the hub takes an exact Newton step in U plus the mean of the local runs outside it, and
# sends a round that raised F back to the previous model with a smaller step.
# --problem B1r trains the same labels on raw pixels / 255 (rows not normalised): flat
# curvature at the optimum, where the hub chooses distributed Newton-CG by itself (section 7.2;
# the hub log says why) and a round is one message round trip: a gradient exchange, or one CG
# step (the summary counts both).
#
# Usage: scripts/main-job.sh BUILD_DIR [--problem B1|B1r] [--partition iid|by-label]
#                            [--agents K] [--max-rounds R] [--target T] [--out DIR]
#                            [--no-validation] [extra hub options...]
# Extra hub options go to dsaga-hub as they are (plain dSAGA, for comparison:
# --aggregation mean, which also accepts --table-refresh F).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: main-job.sh BUILD_DIR [options]}
shift
problem=B1 partition=by-label agents=8 max_rounds=300 target=1e-6 out=$root/out extra=()
aggregation=auto validation=1
while [ $# -gt 0 ]; do
  case "$1" in
    --problem) problem=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --max-rounds) max_rounds=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-validation) validation=0; shift ;;
    --aggregation) aggregation=$2; extra+=("$1" "$2"); shift 2 ;;
    --aggregation=*) aggregation=${1#*=}; extra+=("$1"); shift ;;
    *) extra+=("$1"); shift ;;
  esac
done
# The curves' name in the plot.
case $problem in
  B1) NORMALIZE=(--normalize) ;;
  B1r) NORMALIZE=() ;;
  *) echo "main-job.sh: --problem $problem: B1 or B1r" >&2; exit 2 ;;
esac
case $aggregation in
  auto) [ "$problem" = B1 ] && method="two-level dSAGA (default)" || method="dSAGA (default: auto)" ;;
  two-level) method="two-level dSAGA" ;;
  mean) method="plain dSAGA (--aggregation mean)" ;;
  *) method="dSAGA (--aggregation $aggregation)" ;;
esac
hub=$build/hub/dsaga-hub agent=$build/edge-agent/dsaga-agent reference=$build/tools/dsaga-reference
for b in "$hub" "$agent" "$reference"; do [ -x "$b" ] || { echo "main-job.sh: $b is missing: build first" >&2; exit 1; }; done
mkdir -p "$out"
tag=$(echo "$problem" | tr 'A-Z' 'a-z')
run=$out/$tag-$partition-k$agents
mkdir -p "$run"

DATA=(--format fashion-mnist --split train --scale 0.00392156862745098 "${NORMALIZE[@]}" --bias
      --positive 0,2,4,6)
# Held-out validation: each agent evaluates every round's w on its shard of the 10,000 test
# images (never trained on); the hub reports validation loss, accuracy and AUC, and the plot
# shows the accuracy against rounds. The training problem, and so F*, is unchanged.
# (--no-validation: without, for comparison.)
VALIDATION=(--validation /usr/share/datasets/fashion-mnist)
[ "$validation" = 1 ] || VALIDATION=()
LAMBDA=$(awk 'BEGIN { printf "%.17g", 1 / 60000 }')

# F*: the reference optimum, computed once and kept (it depends only on data and lambda).
fstar_file=$out/$tag-fstar.txt
if [ ! -s "$fstar_file" ]; then
  echo "== reference optimum F* for $problem (Newton; once, then cached in $fstar_file)"
  "$reference" "${DATA[@]}" --lambda "$LAMBDA" --output "$fstar_file" >/dev/null
fi
FSTAR=$(cat "$fstar_file")
echo "== F* = $FSTAR"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

rm -f "$run/endpoint"
echo "== hub + $agents agents on 127.0.0.1, $partition shards, $method"
"$hub" --listen 'tcp://127.0.0.1:*' --endpoint-file "$run/endpoint" --agents "$agents" \
  --lambda "$LAMBDA" --f-star "$FSTAR" --target "$target" --max-rounds "$max_rounds" \
  --metrics "$run/metrics.csv" --model "$run/model.txt" "${extra[@]}" 2>&1 | tee "$run/hub.log" &
hub_pid=$!
pids+=($hub_pid)
for _ in $(seq 100); do [ -s "$run/endpoint" ] && break; sleep 0.1; done
[ -s "$run/endpoint" ] || { echo "main-job.sh: the hub did not start (see $run/hub.log)" >&2; exit 1; }
endpoint=$(cat "$run/endpoint")
for k in $(seq 0 $((agents - 1))); do
  "$agent" --hub "$endpoint" --id "agent-$k" "${DATA[@]}" "${VALIDATION[@]}" --shards "$agents" --shard "$k" \
    --partition "$partition" --give-up 60 >"$run/agent-$k.log" 2>&1 &
  pids+=($!)
done
wait "$hub_pid"
for p in "${pids[@]:1}"; do wait "$p" || { echo "main-job.sh: an agent failed (logs in $run)" >&2; exit 1; }; done

# Rounds, bytes per agent and seconds to 1e-3 and 1e-6 (first round at or below each
# threshold). Seconds of training count from round 0, when every table is built (and the coarse
# space chosen); the time since the hub started adds the agents' data loading.
# Newton-CG's product rounds (column 26, kind) measure no F: they count as round trips only; the
# "outer" rounds are those that measured F.
summary=$(awk -F, 'NR == 2 { t0 = $8 } NR > 1 {
    if ($26 == "product") next
    s = $5 + 0; outer = (NR > 2 ? outer + 1 : 0)
    trips = ($1 != outer ? sprintf(" (%d outer)", outer) : "")
    if (!a && s <= 1e-3) { a = 1; printf "1e-3: round %d%s, %.1f MB per agent, %.1f s of training (%.1f s since the hub started)\n", $1, trips, $13 / 1e6, $8 - t0, $8 }
    if (!b && s <= 1e-6) { b = 1; printf "1e-6: round %d%s, %.1f MB per agent, %.1f s of training (%.1f s since the hub started)\n", $1, trips, $13 / 1e6, $8 - t0, $8 }
    last = $1; lasts = $5; if ($19 != "nan") { acc = $22; auc = $23 }
  } END {
    if (!a) print "1e-3: not reached"
    if (!b) print "1e-6: not reached"
    printf "final: round %d, (F-F*)/F* = %s", last, lasts
    if (acc != "") printf ", validation accuracy %s, AUC %s", acc, auc
    printf "\n"
  }' "$run/metrics.csv")
echo "== $summary" | sed '2,$s/^/== /'
echo "$summary" >"$run/summary.txt"

# The third panel, validation accuracy against rounds, when the agents held rows out. Column 22,
# val_accuracy, is "nan" in rounds without validation counts, which gnuplot skips.
# Rows of Newton-CG's product rounds (no F, no validation) are left out of every panel.
src="< grep -v ',product,' '$run/metrics.csv'"
panels=3 width=1800 accuracy_panel=""
if [ ${#VALIDATION[@]} -gt 0 ]; then
  panels=4 width=2400
  accuracy_panel="unset logscale y
set format y \"%.3f\"
set key bottom right
set ylabel \"validation accuracy (10,000 test images)\"
set xlabel \"round\"
plot \"$src\" every ::1 using 1:22 with linespoints pt 7 ps 0.4 title \"$method\""
fi
gnuplot <<GP
set terminal pngcairo size $width,480 noenhanced
set output "$run/convergence.png"
set datafile separator ","
set multiplot layout 1,$panels title "$method on Fashion-MNIST $problem, $agents agents, $partition shards"
set logscale y
set format y "%.0e"
set grid
set key bottom left
set ylabel "(F - F*) / F*"
set xlabel "round (message round trips)"
plot "$src" every ::1 using 1:(\$5 > 0 ? \$5 : 1e-16) with linespoints pt 7 ps 0.4 title "$method"
set xlabel "MB per agent (both directions)"
plot "$src" every ::1 using (\$13 / 1e6):(\$5 > 0 ? \$5 : 1e-16) with linespoints pt 7 ps 0.4 title "$method"
# The bytes by part of the protocol (metrics columns 28-34: so far, over all agents; column 2
# the agents), per agent; every row, Newton-CG's products included.
set xlabel "round"
set ylabel "MB per agent so far, by part of the protocol"
unset logscale y
set format y "%.2g"
set key top left
plot "$run/metrics.csv" using 1:(\$28 / \$2 / 1e6) with lines lw 2 title "deltas (up)", \\
     "" using 1:(\$32 / \$2 / 1e6) with lines lw 2 title "broadcast (down)", \\
     "" using 1:(\$29 / \$2 / 1e6) with lines lw 2 title "coarse (up)", \\
     "" using 1:((\$30 + \$33) / \$2 / 1e6) with lines lw 2 title "newton-cg (both)", \\
     "" using 1:((\$31 + \$34) / \$2 / 1e6) with lines lw 2 title "setup (both)"
$accuracy_panel
unset multiplot
GP
echo "== metrics: $run/metrics.csv"
echo "== plot:    $run/convergence.png"
echo "== model:   $run/model.txt"
