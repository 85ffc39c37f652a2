#!/usr/bin/env bash
# Every test, from a fresh Debian machine: installs what is missing, builds, and runs the whole
# suite (unit, multi-process integration on loopback, and, where the cross toolchains can be
# installed, the emulated ARM tests). Ends with ctest's summary. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-test}
start=$(date +%s)

# The ARM part (sysroots, cross builds, emulated tests: tests/qemu) is on unless DSAGA_ARM=0.
# The fuzz smoke runs (10 s per libFuzzer target, built with clang in ctest's fuzz_build step)
# are always on.
if [ "${DSAGA_ARM:-1}" = 0 ]; then
  "$root/scripts/install-deps.sh" fuzz
  "$root/scripts/build.sh" "$build" -DBUILD_TESTING=ON -DDSAGA_FUZZ=ON -DDSAGA_ARM_DIR=
else
  t0=$(date +%s)
  "$root/scripts/install-deps.sh" cross fuzz
  echo "test.sh: packages: $(( $(date +%s) - t0 )) s"
  "$root/scripts/build.sh" "$build" -DBUILD_TESTING=ON -DDSAGA_FUZZ=ON -DDSAGA_ARM_DIR="$build/arm"
  # Sysroots and the ARM builds the qemu-labelled tests run, all under $build/arm; -j2 at most.
  t0=$(date +%s)
  "$root/tests/qemu/build-arm.sh" "$build/arm" 2
  echo "test.sh: ARM sysroots and cross builds: $(( $(date +%s) - t0 )) s"
fi

# The unit tests again under ASan+UBSan (the kernels' may_alias loads and every allocation
# checked), and those that run threads (ctest label "threads", tests/CMakeLists.txt: the
# transport and CURVE tests with libzmq's I/O threads and the ZAP handler's, the in-process
# service tests' hub and agent threads, the metrics board and the wire encoder used from two
# threads) under TSan (DSAGA_SANITIZE): the other tests run one thread, in which TSan has
# nothing to check. Each its own build of the library and those tests alone, -j2, at -O1 -g1:
# against RelWithDebInfo's -O2 -g, -O1 compiles a third faster (objective.cpp under ASan: 11 s
# against 17 s) and -g1 (line tables: reports keep file:line and inlined frames) makes a third
# of the debug output to write and link (libdsaga.a 79 MB, not 237). On by default;
# DSAGA_SANITIZED=0 skips them. Measured on a 2-core machine like CI's while other builds loaded
# it (load average 8-13; the run got 0.67 of a core on average): ASan+UBSan build 1279 s, its 346
# tests 134 s; TSan build 349 s, its 90 tests 39 s; 30 minutes of wall time for 1208 s of CPU,
# that is at least 10 minutes on CI's 2 free cores (CPU time / 2; not measured on free cores).
sanitized() {  # sanitized DIR SANITIZERS TARGET LABEL
  local dir=$1 t0 t1
  t0=$(date +%s)
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DBUILD_TESTING=ON \
    -DDSAGA_SANITIZE="$2" -DDSAGA_WERROR=ON >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; echo "test.sh: configure of $dir failed (log above)" >&2; exit 1; }
  cmake --build "$dir" -j2 --target "$3"
  t1=$(date +%s)
  # Set here only: the fuzz runs of the main ctest keep their own sanitizer options.
  # tests/tsan.supp: races inside the uninstrumented libzmq (its I/O threads' hand-overs).
  (cd "$dir" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp \
    ctest -L "$4" --output-on-failure --timeout 900 -j2)
  echo "test.sh: -fsanitize=$2: build $(( t1 - t0 )) s, tests (label $4) $(( $(date +%s) - t1 )) s"
}
if [ "${DSAGA_SANITIZED:-1}" != 0 ]; then
  sanitized "$build/asan" address,undefined dsaga_unit_tests unit
  sanitized "$build/tsan" thread dsaga_threaded_unit_tests threads
fi

cd "$build"
# --timeout: a last guard; every multi-process test also sets its own TIMEOUT property.
ctest --output-on-failure --timeout 900 -j"$(nproc 2>/dev/null || echo 2)"
echo "test.sh: done in $(( $(date +%s) - start )) s"
