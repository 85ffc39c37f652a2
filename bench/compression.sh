#!/usr/bin/env bash
# Issue 15's benchmark: bytes per agent with the agents' deltas in each encoding, through the
# real hub/agent code (one process over ZeroMQ inproc, dsaga-bench-convergence), every variant of
# a setting in one run:
#   b1-label   B1 (dense, d = 785) by label, K = 8
#   b2-label   B2 (10 classes, d*C = 7850) by label, K = 8
#   s1-label   S1 (sparse, d = 2^18 + 1, each agent one class: its own column support) K = 10
# Variants (dSAGA with the default aggregation, two-level here):
#   dsaga-whole-f64  every vector dense f64 over the whole model (what every message was before)
#   dsaga-f64        vectors restricted to each sparse agent's support, f64 (dense = the same)
#   dsaga-f32        ... deltas rounded to float, curvature payloads in floats
#   dsaga-q8         ... deltas as 8-bit integers and a 16-bit scale per 64 entries (the default),
#                    curvature payloads in floats; error feedback keeps the tables exact
# MB are per agent, both directions, measured on the sockets (ZMTP framing included); "setup"
# is round 1's bytes less one round's. Writes OUT/<setting>.txt, OUT/*.csv (per round, with the
# bytes by part of the protocol), OUT/<tag>.png and OUT/summary.txt.
#
# Usage: bench/compression.sh [BUILD_DIR] [--rounds 80] [--out DIR] [--limit ROWS]
#                             [--settings "b1-label b2-label s1-label"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/common.sh"
build=$root/build-bench
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
rounds=80 out=$root/bench/results/compression limit=0
all_settings="b1-label b2-label s1-label"
settings=$all_settings
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    *) echo "compression.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bench_prepare compression.sh
start=$(date +%s)
for setting in $settings; do
  case "$setting" in
    b1-label) args=(--problem B1 --partition by-label --agents 8) variants=dsaga-f64,dsaga-f32,dsaga-q8 ;;
    b2-label) args=(--problem B2 --partition by-label --agents 8) variants=dsaga-f64,dsaga-f32,dsaga-q8 ;;
    s1-label) args=(--problem S1 --partition by-label --agents 10)
              variants=dsaga-whole-f64,dsaga-f64,dsaga-f32,dsaga-q8 ;;
    *) echo "compression.sh: unknown setting $setting" >&2; exit 2 ;;
  esac
  echo "== $setting"
  t0=$(date +%s)
  rm -f "$out/$setting.tsv" "$out/$setting.txt"
  "$tool" "${args[@]}" --algorithms "$variants" --max-rounds "$rounds" --eta-grid 1 \
    --limit "$limit" --out "$out" --summary "$out/$setting.tsv" 2>&1 | tee -a "$out/$setting.txt"
  echo "($setting: $(( $(date +%s) - t0 )) s)" | tee -a "$out/$setting.txt"
  bench_plot "$setting"
done
bench_summary
