#!/bin/sh
# The local-solver benchmark of issue 6, side by side in one run (results: bench/RESULTS.md):
# scikit-learn's SAGA epoch on B1, then dsaga-bench-local (memory, read-bandwidth floor, dsaga's
# f32/f64 epochs, sparse d = 2^14 vs 2^20, ratios), then the Google Benchmark step benchmarks.
#
#   bench/local_solver.sh [build-dir] [repeats]
#
# build-dir (default: build-bench) is configured with -DDSAGA_BUILD_BENCH=ON in the default build
# type (RelWithDebInfo, no -march) and the two bench targets are built into it. Needs
# libbenchmark-dev, and Debian's python3-sklearn (scripts/install-deps.sh bench). The machine and
# its load are printed first: on a shared machine, compare only figures from the same run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:-$src/build-bench}
repeats=${2:-7}
python=/usr/bin/python3  # Debian's interpreter, where python3-sklearn lives

echo "== machine"
lscpu | grep -E 'Model name|^CPU\(s\)|L2 cache|L3 cache' || true
uptime
cmake -S "$src" -B "$build" -DDSAGA_BUILD_BENCH=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j1 --target dsaga-bench-local dsaga_bench_saga_step >/dev/null

echo "== scikit-learn $($python -c 'import sklearn; print(sklearn.__version__)') SAGA on B1"
sk=$($python "$here/sklearn_epoch.py" "$repeats")
echo "$sk"
sk64=$(echo "$sk" | awk '$2 == "float64" && $3 == "epoch_min_ms" {print $4}')
sk32=$(echo "$sk" | awk '$2 == "float32" && $3 == "epoch_min_ms" {print $4}')

echo "== dsaga"
"$build/bench/dsaga-bench-local" --repeats "$repeats" --sklearn-f64-ms "$sk64" \
  --sklearn-f32-ms "$sk32"

echo "== Google Benchmark: the step"
"$build/bench/dsaga_bench_saga_step" --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true
