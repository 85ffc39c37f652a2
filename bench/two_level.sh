#!/usr/bin/env bash
# Issue 14's benchmark: two-level dSAGA (the hub's default for --algorithm dsaga) against plain
# dSAGA (weighted mean), SCAFFOLD and FedAvg, through the real hub/agent code (one process over
# ZeroMQ inproc, dsaga-bench-convergence), one local epoch per round, at most ROUNDS rounds, on:
#   b1-label     B1 by label, K = 8          b2-label     B2 (10 classes) by label, K = 8
#   b1-iid       B1 iid, K = 8               s1-label     S1 (sparse, d = 2^18 + 1) by label,
#   b1-dir0.3    B1 Dirichlet(0.3), K = 8                 K = 10: one class per agent
#   b1-lam1e-4   B1 by label, lambda = 1e-4  d1-label     D1 (dense d = 64, heavy-tailed rows)
#                                                         by label, K = 4
# (the problems: bench/convergence/problems.hpp). The baselines run their default step only
# (1/(3 L_max)); dSAGA picks its own. On S1 the baselines stop after S1_BASELINE_ROUNDS (20):
# their local steps cost O(d) each (no just-in-time sparse path, local_method.cpp), about 10 s
# per round at d = 2^18 on 2 cores, so 60 rounds of both would take 20 minutes alone. Each run's line gives rounds, MB per agent, gradient
# evaluations and seconds to 1e-3 and 1e-6, the final (F-F*)/F*, the peak (the largest
# (F-F*)/F* of the run, the start included), the one-time setup bytes per agent (round 1's
# total less one round's) and the bytes per agent of one round.
# Writes OUT/<setting>.txt (the benchmark's output), OUT/*.csv (per round, with two-level's
# guard: step scale and reverts), OUT/<tag>.png (plot_convergence.sh), OUT/<setting>.tsv and
# OUT/summary.txt (every setting found in OUT in one table, printed at the end, with this
# call's time; --settings reruns some and keeps the others). F* is computed once per problem
# (and lambda) by the reference solver and cached in OUT (B2 takes 3-4 minutes, S1 2).
#
# Usage: bench/two_level.sh [BUILD_DIR] [--rounds 60] [--out DIR] [--limit ROWS]
#                           [--settings "b1-label s1-label ..."] [--s1-baseline-rounds 20]
# --limit keeps the first ROWS images (smoke runs; lambda = 1/ROWS, F* cached separately).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/common.sh"
build=$root/build-bench
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
rounds=60 out=$root/bench/results/two-level limit=0 s1_baseline_rounds=20
all_settings="b1-label b1-iid b1-dir0.3 b1-lam1e-4 b2-label s1-label d1-label"
settings=$all_settings
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --s1-baseline-rounds) s1_baseline_rounds=$2; shift 2 ;;
    *) echo "two_level.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bench_prepare two_level.sh
start=$(date +%s)
for setting in $settings; do
  case "$setting" in
    b1-label) args=(--problem B1 --partition by-label --agents 8) ;;
    b1-iid) args=(--problem B1 --partition iid --agents 8) ;;
    b1-dir0.3) args=(--problem B1 --partition dirichlet:0.3 --agents 8) ;;
    b1-lam1e-4) args=(--problem B1 --partition by-label --agents 8 --lambda 1e-4) ;;
    b2-label) args=(--problem B2 --partition by-label --agents 8) ;;
    s1-label) args=(--problem S1 --partition by-label --agents 10) ;;
    d1-label) args=(--problem D1 --partition by-label --agents 4) ;;
    *) echo "two_level.sh: unknown setting $setting" >&2; exit 2 ;;
  esac
  echo "== $setting"
  t0=$(date +%s)
  rm -f "$out/$setting.tsv" "$out/$setting.txt"
  run() {  # run ALGORITHMS ROUNDS
    "$tool" "${args[@]}" --algorithms "$1" --max-rounds "$2" --eta-grid 1 --limit "$limit" \
      --out "$out" --summary "$out/$setting.tsv" | tee -a "$out/$setting.txt"
  }
  if [ "$setting" = s1-label ]; then
    run dsaga-plain,dsaga "$rounds"
    run scaffold,fedavg "$(( s1_baseline_rounds < rounds ? s1_baseline_rounds : rounds ))"
  else
    run dsaga-plain,dsaga,scaffold,fedavg "$rounds"
  fi
  echo "($setting: $(( $(date +%s) - t0 )) s)" | tee -a "$out/$setting.txt"
  bench_plot "$setting"
done
bench_summary
echo "tables: $out/*.txt, per-round metrics: $out/*.csv"
