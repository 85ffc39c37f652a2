#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS.
#
#   tests/fuzz/run.sh SECONDS [TARGET...]      # e.g. run.sh 600 (the long run), run.sh 10 wire
#   tests/fuzz/run.sh --no-build SECONDS ...   # reuse the build (ctest's per-target entries)
#   run.sh 0                                   # build only
#
# Targets: wire libsvm csv idx config keys (default: all, one after the other).
# Environment: DSAGA_FUZZ_BUILD (build dir, default <repo>/build-fuzz), CXX (default clang++),
# JOBS (build parallelism, default 1), FUZZ_ARGS (extra libFuzzer flags).
# Each target starts from the committed seeds in tests/fuzz/corpus/TARGET (never written to)
# plus the inputs it found earlier in BUILD/corpus/TARGET. A crash leaves its input in
# BUILD/artifacts/ (add it to tests/fuzz/corpus/TARGET as a regression seed once fixed); the
# script then exits 1. libFuzzer's final stats (execs, cov, ft) go to BUILD/logs/TARGET.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${DSAGA_FUZZ_BUILD:-$repo/build-fuzz}"
all_targets=(wire libsvm csv idx config keys)

do_build=1
if [ "${1:-}" = "--no-build" ]; then do_build=0; shift; fi
seconds="${1:?usage: run.sh [--no-build] SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

if [ "$do_build" = 1 ]; then
  cxx="${CXX:-clang++}"
  command -v "$cxx" >/dev/null || cxx=clang++-14
  mkdir -p "$build"
  cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" >"$build/cmake.log" 2>&1 ||
    { cat "$build/cmake.log" >&2; exit 2; }
  cmake --build "$build" -j"${JOBS:-1}" --target $(printf 'fuzz_%s ' "${targets[@]}")
fi
[ "$seconds" = 0 ] && exit 0

mkdir -p "$build/artifacts" "$build/logs"
failed=()
for t in "${targets[@]}"; do
  bin="$build/fuzz_$t"
  [ -x "$bin" ] || { echo "run.sh: $bin is not built (unknown target '$t'?)" >&2; exit 2; }
  mkdir -p "$build/corpus/$t"
  dict=()
  [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
  echo "== fuzz_$t for ${seconds}s"
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb: memory blow-ups are findings too.
  # ${FUZZ_ARGS} unquoted on purpose: several flags.
  # shellcheck disable=SC2086
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$t-" "${dict[@]}" ${FUZZ_ARGS:-} \
      "$build/corpus/$t" "$here/corpus/$t" >"$build/logs/$t.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*(DONE|cov:)' \
      "$build/logs/$t.log" | tail -3
  else
    echo "fuzz_$t FAILED (log: $build/logs/$t.log):" >&2
    grep -E 'ERROR|SUMMARY|Test unit written' "$build/logs/$t.log" >&2 || tail -20 "$build/logs/$t.log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "run.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
