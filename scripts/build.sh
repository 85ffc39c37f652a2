#!/usr/bin/env bash
# Configures and builds dsaga natively: scripts/build.sh [BUILD_DIR] [extra cmake arguments].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; echo "build.sh: configure failed (log above)" >&2; exit 1; }
cmake --build "$build" -j"$jobs"
