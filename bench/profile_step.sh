#!/bin/sh
# The SAGA step under valgrind's callgrind (the profile of issue 6 in bench/RESULTS.md): per
# step, instructions (Ir), data reads and writes, L1 misses, last-level misses and dirty
# evictions, for four cases (dense float32 rows that stay in cache, N = 128, and B1's size,
# N = 60000; sparse at d = 2^14 and d = 2^20), each with two last-level cache models: this
# machine's L3 as CPUID reports it, and its 2 MiB L2 (callgrind models only two levels).
#
#   bench/profile_step.sh [build-dir] [steps]      # ~1 minute on one core with 20000 steps
#
# Needs valgrind (Debian: valgrind). Valgrind does not run AVX-512 code, so the dense step runs
# its AVX2 build here (the driver prints which). Software and hardware prefetches are not
# simulated: misses are what the code would take without them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
steps=${2:-20000}
cmake -S "$src" -B "$build" -DDSAGA_BUILD_BENCH=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j1 --target dsaga-bench-profile >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
l2=$(getconf LEVEL2_CACHE_SIZE 2>/dev/null || echo 0)
[ "$l2" -gt 0 ] 2>/dev/null || l2=2097152

printf '%-16s %-6s %9s %9s %8s %8s %8s %8s %8s\n' case LL Ir Dr Dw D1mr D1mw DLmr dirty-ev
for c in "dense32 128" "dense32 60000" "sparse 16384" "sparse 1048576"; do
  set -- $c
  for model in L3 L2; do
    ll=""
    [ "$model" = L2 ] && ll="--LL=$l2,16,64"
    valgrind --tool=callgrind --cache-sim=yes --simulate-wb=yes --instr-atstart=no $ll \
      --callgrind-out-file="$out/cg.out" "$build/bench/dsaga-bench-profile" "$1" "$2" "$steps" \
      >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
    # The dump taken at CALLGRIND_DUMP_STATS_AT is the measured run. Its `totals:` line holds
    # the events in the order of the `events:` line (callgrind 3.19 writes that dump's
    # `summary:` line wrapped negative after CALLGRIND_ZERO_STATS; `totals:` is right).
    dump=$(ls "$out"/cg.out* | sort | tail -1)
    awk -v name="$1 $2" -v model="$model" -v steps="$steps" '
      /^events:/ { for (i = 2; i <= NF; ++i) ev[$i] = i - 1 }
      /^totals:/ { for (i = 2; i <= NF; ++i) t[i - 1] = $i }
      END {
        dirty = t[ev["ILdmr"]] + t[ev["DLdmr"]] + t[ev["DLdmw"]]
        printf "%-16s %-6s %9.1f %9.1f %8.1f %8.2f %8.2f %8.2f %8.2f\n", name, model,
          t[ev["Ir"]] / steps, t[ev["Dr"]] / steps, t[ev["Dw"]] / steps, t[ev["D1mr"]] / steps,
          t[ev["D1mw"]] / steps, t[ev["DLmr"]] / steps, dirty / steps
      }' "$dump"
    rm -f "$out"/cg.out*
  done
done
grep -h 'kernels' "$out/log" | sed 's/^/last run: /'
