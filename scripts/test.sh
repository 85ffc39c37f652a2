#!/usr/bin/env bash
# Every test, from a fresh Debian machine: installs what is missing, builds, and runs the whole
# suite (unit, multi-process integration on loopback, and, where the cross toolchains can be
# installed, the emulated ARM tests). Ends with ctest's summary. Usage: scripts/test.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-test}
start=$(date +%s)

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$build" -DBUILD_TESTING=ON

cd "$build"
# --timeout: a last guard; every multi-process test also sets its own TIMEOUT property.
ctest --output-on-failure --timeout 900 -j"$(nproc 2>/dev/null || echo 2)"
echo "test.sh: done in $(( $(date +%s) - start )) s"
