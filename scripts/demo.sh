#!/usr/bin/env bash
# The main job, from a fresh Debian machine: installs what is missing, builds, then trains a hub
# and 8 edge agents on this machine on Fashion-MNIST (problem B1, non-IID shards), showing
# progress, and ends with a convergence plot.
# Usage: scripts/demo.sh [BUILD_DIR] [scripts/main-job.sh options, e.g. --partition iid]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$build" -DBUILD_TESTING=OFF
exec "$root/scripts/main-job.sh" "$build" "$@"
