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

# predict_setup DSAGA_PREDICT DSAGA_REFERENCE (predict*.sh): PREDICT and REFERENCE; SEED from
# DSAGA_TEST_SEED (to repeat a run) or random, said on stdout; then into the scratch directory.
predict_setup() {
  PREDICT=$1
  REFERENCE=$2
  SEED=${DSAGA_TEST_SEED:-$RANDOM}
  echo "seed $SEED (DSAGA_TEST_SEED to repeat)"
  cd "$WORK"
}

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

# ---- Network namespaces (net_faults.sh) ----
# NETNS lists the namespaces this test created. Their names carry a random part, so every
# process found in one of them is this test's own: cleanup_netns kills them by pid (a process
# outlives the deletion of its namespace's name) and deletes the namespaces, then runs cleanup.
NETNS=()

# netns_require: exits 77 (a skip, SKIP_RETURN_CODE in CMake) saying why, unless this process
# can create namespaces and veth pairs and use iptables' statistic match inside them.
netns_require() {
  local why=""
  if [ "$(id -u)" -ne 0 ]; then why="not root"
  elif ! command -v ip >/dev/null; then why="no ip(8) (iproute2)"
  elif ! command -v iptables >/dev/null; then why="no iptables"
  elif ! command -v python3 >/dev/null; then why="no python3"
  else
    local probe="dsaga-nfprobe-$$-$RANDOM"
    if ! ip netns add "$probe" 2>/dev/null; then why="ip netns add failed"
    else
      if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null; then
        why="no veth support"
      elif ! ip netns exec "$probe" iptables -A INPUT -i p0 -m statistic --mode random \
          --probability 0.05 -j DROP 2>/dev/null; then
        why="iptables -m statistic unavailable in a network namespace"
      fi
      ip netns del "$probe" 2>/dev/null || true
    fi
  fi
  if [ -n "$why" ]; then  # nothing started yet: no logs to show
    echo "SKIP: $why" >&2; trap - EXIT; rm -rf "$WORK"; exit 77
  fi
}

# netns_traps: installs cleanup_netns on exit and turns SIGINT/SIGTERM/SIGHUP into an exit, so
# a ctest timeout or ^C still removes the namespaces.
netns_traps() {
  trap cleanup_netns EXIT
  trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP
}

cleanup_netns() {
  local rc=$? ns p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in "${NETNS[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  set +e  # so that the next line only sets $? (cleanup reads the test's status from it)
  (exit $rc)
  cleanup
}

# netns_add NAME: creates the namespace (recorded for cleanup) with its loopback up.
netns_add() {
  ip netns add "$1" || fail "ip netns add $1"
  NETNS+=("$1")
  ip -n "$1" link set lo up
}

# iptables_drops NS: packets dropped by the DROP rules of NS's INPUT and OUTPUT chains.
iptables_drops() {
  ip netns exec "$1" iptables -L -v -n -x | awk '$3 == "DROP" { n += $1 } END { print n + 0 }'
}
