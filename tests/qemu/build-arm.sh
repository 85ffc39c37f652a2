#!/usr/bin/env bash
# Makes the Debian sysroots and the ARM cross builds that the emulated tests (ctest label `qemu`)
# run, all under OUT (never in the source tree):
#   OUT/sysroot-arm64, OUT/sysroot-armhf   target headers and libraries (toolchains/make-sysroot.sh)
#   OUT/kernel-arm64                       Debian's arm64 kernel, modules and busybox-static
#   OUT/aarch64   DSAGA_STATIC_AGENT=ON: the static agent and the unit tests (which then link
#                 ZeroMQ, zlib, spdlog, fmt and toml++ statically too)
#   OUT/armhf     the dynamic agent and the unit tests
#   OUT/armhf-static   the static armhf agent, only with DSAGA_ARM_ARMHF_STATIC=1: no test runs
#                 it (the emulated training runs the dynamic armhf agent), so CI skips it
# Only the targets the tests run are built. Usage: build-arm.sh OUT [JOBS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-arm.sh OUT [JOBS]}
jobs=${2:-2}
mkdir -p "$out"
out=$(cd "$out" && pwd)

step() {  # step NAME COMMAND...: runs and times one step, its log in OUT/NAME.log
  local name=$1; shift
  local t0; t0=$(date +%s)
  if ! "$@" >"$out/$name.log" 2>&1; then
    tail -n 40 "$out/$name.log"; echo "build-arm.sh: $name failed (log: $out/$name.log)" >&2; exit 1
  fi
  echo "build-arm.sh: $name: $(( $(date +%s) - t0 )) s"
}

step sysroot-arm64 "$src/toolchains/make-sysroot.sh" arm64 "$out/sysroot-arm64"
step sysroot-armhf "$src/toolchains/make-sysroot.sh" armhf "$out/sysroot-armhf"
step kernel-arm64 "$src/toolchains/make-sysroot.sh" arm64 "$out/kernel-arm64" kernel

unit_targets() {  # the unit-test executables, one per tests/unit/*_test.cpp
  for f in "$src"/tests/unit/*_test.cpp; do basename "$f" .cpp | sed 's/^/dsaga_/'; done
}
cross() {  # cross NAME TRIPLE SYSROOT STATIC TARGETS...
  local name=$1 triple=$2 sysroot=$3 static=$4; shift 4
  cmake -S "$src" -B "$out/$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_TOOLCHAIN_FILE="$src/toolchains/$triple.cmake" -DDSAGA_SYSROOT="$sysroot" \
    -DDSAGA_STATIC_AGENT="$static" -DBUILD_TESTING=ON -DDSAGA_BUILD_HUB=OFF -DDSAGA_BUILD_TOOLS=OFF
  cmake --build "$out/$name" -j"$jobs" --target "$@"
}
step build-aarch64 cross aarch64 aarch64-linux-gnu "$out/sysroot-arm64" ON dsaga-agent $(unit_targets)
step build-armhf cross armhf arm-linux-gnueabihf "$out/sysroot-armhf" OFF dsaga-agent $(unit_targets)
if [ "${DSAGA_ARM_ARMHF_STATIC:-0}" = 1 ]; then
  step build-armhf-static cross armhf-static arm-linux-gnueabihf "$out/sysroot-armhf" ON dsaga-agent
fi

size() {  # size TRIPLE FILE: bytes after stripping a copy
  local tmp; tmp=$(mktemp); "$1-strip" -o "$tmp" "$2"; stat -c %s "$tmp"; rm -f "$tmp"
}
sizes="aarch64 static $(size aarch64-linux-gnu "$out/aarch64/edge-agent/dsaga-agent") B"
sizes+=", armhf dynamic $(size arm-linux-gnueabihf "$out/armhf/edge-agent/dsaga-agent") B"
if [ "${DSAGA_ARM_ARMHF_STATIC:-0}" = 1 ]; then
  sizes+=", armhf static $(size arm-linux-gnueabihf "$out/armhf-static/edge-agent/dsaga-agent") B"
fi
echo "build-arm.sh: stripped dsaga-agent: $sizes"
