#!/usr/bin/env bash
# Small real data sets and natural splits through the real daemons (a dsaga-hub and one
# dsaga-agent per file on 127.0.0.1), with the defaults a user gets, side by side with two
# forced modes in the same run: plain dSAGA (--aggregation mean) and Newton-CG (--aggregation
# newton-cg; on the dense sets also with --preconditioner gram, on the sparse one with
# --preconditioner pairs). The data (bench/small_data.py, from Debian's python3-sklearn): breast
# cancer and wine with raw, badly scaled columns, digits as they are and with rows scaled over four decades, each agent
# holding one class; and a sparse wide set (d ~ 2^18) whose files have their own widths and
# supports, none given --features. lambda = 1/N, target 1e-6, round cap 200 (message rounds).
# Writes OUT/<set>-<method>/ (logs, metrics.csv) and OUT/summary.txt: rounds and MB per agent to
# 1e-3 and 1e-6, the final (F-F*)/F*, and the largest F of any round after the first against
# F at the start (trial points a guard sent back count).
#
# Usage: bench/daemons_small.sh [BUILD_DIR] [--out DIR] [--sets "cancer wine digits digits-rows sparse"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
out=$root/bench/results/daemons-small sets="cancer wine digits digits-rows sparse"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --sets) sets=$2; shift 2 ;;
    *) echo "daemons_small.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
"$root/scripts/install-deps.sh" bench
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; echo "daemons_small.sh: configure failed" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" --target dsaga-hub dsaga-agent dsaga-reference >/dev/null
hub=$build/hub/dsaga-hub agent=$build/edge-agent/dsaga-agent reference=$build/tools/dsaga-reference
mkdir -p "$out"
data=$out/data
[ -f "$data/sparse/all.libsvm" ] && [ -f "$data/digits/all.libsvm" ] || /usr/bin/python3 "$root/bench/small_data.py" "$data"
echo "machine: $(nproc) cores; commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" |
  tee "$out/machine.txt"

# run SET METHOD-NAME [hub options...]
run() {
  local set=$1 name=$2; shift 2
  local dir=$data/$set fmt problem=(--loss logistic)
  case $set in
    cancer) fmt=csv ;;
    wine) fmt=csv problem=(--loss multinomial --classes 3) ;;
    digits | digits-rows) fmt=libsvm problem=(--loss multinomial --classes 10) ;;
    sparse) fmt=libsvm ;;
    *) echo "daemons_small.sh: unknown set $set" >&2; exit 2 ;;
  esac
  local files=("$dir"/agent*."$fmt") n lambda fstar run=$out/$set-$name
  n=$(wc -l <"$dir/all.$fmt")
  lambda=$(awk -v n="$n" 'BEGIN { printf "%.17g", 1 / n }')
  rm -rf "$run"; mkdir -p "$run"
  if [ ! -s "$out/$set-fstar.txt" ]; then
    "$reference" --data "$dir/all.$fmt" "${problem[@]}" --lambda "$lambda" --quiet \
      --output "$out/$set-fstar.txt" >"$out/$set-reference.log" 2>&1
  fi
  fstar=$(cat "$out/$set-fstar.txt")
  "$hub" --listen 'tcp://127.0.0.1:*' --endpoint-file "$run/endpoint" --agents ${#files[@]} \
    --lambda "$lambda" --f-star "$fstar" --target 1e-6 --max-rounds 200 "${problem[@]}" \
    --metrics "$run/metrics.csv" --no-progress "$@" >"$run/hub.log" 2>&1 &
  local hub_pid=$! pids=() k=0
  for _ in $(seq 100); do [ -s "$run/endpoint" ] && break; sleep 0.1; done
  for f in "${files[@]}"; do
    "$agent" --hub "$(cat "$run/endpoint")" --id "agent-$k" --data "$f" "${problem[@]}" \
      --give-up 120 >"$run/agent-$k.log" 2>&1 &
    pids+=($!); k=$((k + 1))
  done
  wait "$hub_pid" || echo "daemons_small.sh: $set $name: the hub failed (see $run/hub.log)" >&2
  for p in "${pids[@]}"; do wait "$p" || true; done
  awk -F, -v set="$set" -v name="$name" 'NR > 1 && $26 != "product" {
      s = $5 + 0
      if (!a && s <= 1e-3) { a = 1; r3 = $1; m3 = $13 / 1e6 }
      if (!b && s <= 1e-6) { b = 1; r6 = $1; m6 = $13 / 1e6 }
      if (NR == 2) start = s; else if (s > peak) peak = s
      last = $1; final = s
    } END {
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%.3g @ %d\t%.3g (start %.3g)\n", set, name,
        a ? r3 : "-", a ? sprintf("%.3f", m3) : "-", b ? r6 : "-", b ? sprintf("%.3f", m6) : "-",
        final, last, peak, start
    }' "$run/metrics.csv" >"$run/row.tsv"
  cat "$run/row.tsv"
}

start=$(date +%s)
for set in $sets; do
  run "$set" default
  run "$set" mean --aggregation mean
  run "$set" newton-cg --aggregation newton-cg
  # The Gram bound, Newton-CG's preconditioner on these small models until the Hessians; the
  # sparse model is too wide for either, and its Newton-CG had the curvature pairs alone until
  # the diagonals.
  if [ "$set" = sparse ]; then
    run "$set" newton-pairs --aggregation newton-cg --preconditioner pairs
  else
    run "$set" newton-gram --aggregation newton-cg --preconditioner gram
  fi
done
{
  printf 'set\tmethod\tr(1e-3)\tMB(1e-3)\tr(1e-6)\tMB(1e-6)\tfinal\tpeak (F-F*)/F* after round 0\n'
  for set in $sets; do
    for method in default mean newton-cg newton-gram newton-pairs; do
      [ ! -f "$out/$set-$method/row.tsv" ] || cat "$out/$set-$method/row.tsv"
    done
  done
} | column -t -s $'\t' | tee "$out/summary.txt"
echo "total: $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
