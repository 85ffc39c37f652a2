#!/usr/bin/env bash
# Issue 18's benchmark: distributed Newton-CG and auto's choice of it, through the real hub/agent
# code (one process over ZeroMQ inproc, dsaga-bench-convergence), against plain dSAGA and the
# two-level scheme alone, and liblinear's Newton on the same objective in the same run:
#   b1r-label   B1r (raw pixels / 255, rows not normalised, lambda = 1/N) by label, K = 8
#   b1r-iid     B1r IID, K = 8
#   b1-label    B1 (unit rows) by label, K = 8: where auto must keep two-level
# Variants: dsaga-plain (weighted mean), dsaga-twolevel (two-level, never switching),
# dsaga-newton (Newton-CG from the start, Gram preconditioner), dsaga-newton-pairs (Newton-CG
# with the curvature-pairs preconditioner, no upload), dsaga (auto, the default).
# Rounds print as OUTER(MESSAGES) where a method's message round trips outnumber its outer
# rounds (Newton-CG: one gradient exchange, then one per CG step); MB are per agent, both
# directions, on the sockets. liblinear (`liblinear-train -s 0`, trust-region Newton, one node)
# runs via bench/single_node.py on B1r: its Newton iterations and seconds to 1e-3 and 1e-6.
# Writes OUT/<setting>.txt, OUT/*.csv (per round: outer, mode, kind), OUT/<tag>.png,
# OUT/summary.txt, OUT/b1r-liblinear.txt.
#
# Usage: bench/newton_cg.sh [BUILD_DIR] [--rounds 150] [--out DIR] [--limit ROWS]
#                           [--settings "b1r-label b1r-iid b1-label"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/common.sh"
build=$root/build-bench
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
rounds=150 out=$root/bench/results/newton-cg limit=0
all_settings="b1r-label b1r-iid b1-label"
settings=$all_settings
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    *) echo "newton_cg.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bench_prepare newton_cg.sh
start=$(date +%s)
for setting in $settings; do
  case "$setting" in
    b1r-label) args=(--problem B1r --partition by-label --agents 8) ;;
    b1r-iid) args=(--problem B1r --partition iid --agents 8) ;;
    b1-label) args=(--problem B1 --partition by-label --agents 8) ;;
    *) echo "newton_cg.sh: unknown setting $setting" >&2; exit 2 ;;
  esac
  echo "== $setting"
  t0=$(date +%s)
  rm -f "$out/$setting.tsv" "$out/$setting.txt"
  DSAGA_BENCH_NOTES=1 "$tool" "${args[@]}" --algorithms dsaga,dsaga-newton,dsaga-newton-pairs,dsaga-twolevel,dsaga-plain \
    --max-rounds "$rounds" --eta-grid 1 --limit "$limit" --out "$out" \
    --summary "$out/$setting.tsv" 2>&1 | tee -a "$out/$setting.txt"
  echo "($setting: $(( $(date +%s) - t0 )) s)" | tee -a "$out/$setting.txt"
  bench_plot "$setting"
done
# liblinear's Newton on B1r, against the F* the benchmark computed.
suffix=""
if [ "$limit" -gt 0 ]; then suffix="-limit$limit"; fi
fstar_file=$out/B1r$suffix-fstar.txt
if [ -f "$fstar_file" ] && command -v liblinear-train >/dev/null; then
  echo "== b1r liblinear"
  /usr/bin/python3 "$root/bench/single_node.py" --problem B1r --methods liblinear \
    --f-star "$(cat "$fstar_file")" --limit "$limit" --out "$out" --quiet | tee "$out/b1r-liblinear.txt"
fi
bench_summary
