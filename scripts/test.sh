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

cd "$build"
# --timeout: a last guard; every multi-process test also sets its own TIMEOUT property.
ctest --output-on-failure --timeout 900 -j"$(nproc 2>/dev/null || echo 2)"
echo "test.sh: done in $(( $(date +%s) - start )) s"
