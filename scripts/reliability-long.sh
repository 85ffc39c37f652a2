#!/usr/bin/env bash
# The long versions of the reliability tests (issue 7), one after the other; CI runs the short
# versions through ctest. Needs root for the network namespaces (net_faults).
#   hub_kill_resume: 30 SIGKILLs of the hub at random moments; the final model must equal an
#                    uninterrupted run's bit for bit.
#   crash_churn:     15 hub SIGKILLs while 30% of 10 agents are killed 30 times in all.
#   net_faults:      8 agents on 10,000 label-sorted images behind 5% loss, 100 ms delay and
#                    three 10 s link cuts.
#   load:            1000 agents on one hub over tcp, 20 rounds (bench/load.sh).
# Usage: scripts/reliability-long.sh [BUILD_DIR]   (built with scripts/build.sh if missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-test}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$build" -DBUILD_TESTING=ON -DDSAGA_BUILD_BENCH=ON >/dev/null
hub=$build/hub/dsaga-hub agent=$build/edge-agent/dsaga-agent ref=$build/tools/dsaga-reference
it=$root/tests/integration
run() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "== $name"
  "$@"
  echo "== $name: passed in $(( $(date +%s) - t0 )) s"
}
run hub_kill_resume bash "$it/hub_kill_resume.sh" "$hub" "$agent" "$ref" 30
run crash_churn bash "$it/crash_churn.sh" "$hub" "$agent" "$ref" long
run net_faults bash "$it/net_faults.sh" "$hub" "$agent" "$ref" long
run load bash "$root/bench/load.sh" "$build" 1000 20
echo "reliability-long: all passed"
