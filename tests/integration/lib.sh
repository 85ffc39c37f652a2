# Helpers for the multi-process tests: a scratch directory and process bookkeeping that never
# leaves a process behind (every child is killed on exit, whatever happens).
set -euo pipefail
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsaga-it.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "---- logs (test failed, rc=$rc) ----"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_for_file FILE SECONDS
wait_for_file() {
  local i=0
  while [ ! -s "$1" ]; do
    i=$((i + 1)); [ $i -gt $(($2 * 10)) ] && fail "timed out waiting for $1"
    sleep 0.1
  done
}

# wait_pid PID SECONDS -> exit status of PID (kills it on timeout)
wait_pid() {
  local i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt $(($2 * 10)) ]; then kill -9 "$1" 2>/dev/null; fail "process $1 still running after $2 s"; fi
    sleep 0.1
  done
  local rc=0
  wait "$1" || rc=$?
  return $rc
}
