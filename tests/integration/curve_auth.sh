#!/usr/bin/env bash
# CurveZMQ end to end with the real daemons and dsaga-keygen keys: a hub that admits two
# allowlisted agents. Before they join, three intruders try: an unknown key, a valid key
# claiming another agent's id, and a plain-text agent. None gets in (the unknown key and the
# plain-text agent never reach the hub; the impersonator is refused), the hub's state is
# untouched (it still waits for exactly the two), then the real agents train to the round cap.
# Usage: curve_auth.sh HUB AGENT KEYGEN
HUB=$1 AGENT=$2 KEYGEN=$3
source "$(dirname "$0")/lib.sh"

cd "$WORK"
for name in hub agent-0 agent-1 rogue; do "$KEYGEN" "$name" --id "$name" -q >"$name.line"; done
cat agent-0.line agent-1.line >allowlist
[ "$(stat -c %a hub.key)" = 600 ] || fail "hub.key is not mode 0600"
"$KEYGEN" hub -q >/dev/null 2>&1 && fail "keygen overwrote hub.key without --force"

DATA=(--format fashion-mnist --split test --limit 600 --scale 0.00392156862745098 --normalize --bias
      --positive 0,2,4,6 --shards 2)
"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file endpoint --agents 2 --lambda 1e-2 \
  --max-rounds 5 --key hub.key --allowlist allowlist --metrics metrics.csv --no-progress \
  >hub.log 2>&1 &
HUB_PID=$!; PIDS+=($HUB_PID)
wait_for_file endpoint 20
EP=$(cat endpoint)
intruder() {  # intruder NAME ARGS...: must fail to join within its give-up time
  local name=$1; shift
  local rc=0
  timeout 30 "$AGENT" --hub "$EP" "${DATA[@]}" --shard 0 --heartbeat 0.3 --hub-timeout 1 \
    --give-up 3 "$@" >"$name.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] || fail "$name got in"
  [ $rc -lt 128 ] || fail "$name crashed (status $rc)"
  echo "ok: $name kept out ($(tail -n 1 "$name.log" | sed 's/.*: //'))"
}
intruder unknown-key --id rogue --key rogue.key --hub-key hub.pub
intruder impersonator --id agent-1 --key agent-0.key --hub-key hub.pub
intruder plaintext --id agent-0
grep -q "allowlisted for 'agent-0': refused" hub.log || fail "the hub did not log the impersonation"
grep -q "refused CURVE client key" hub.log || fail "the hub did not log the unknown key"
for k in 0 1; do
  "$AGENT" --hub "$EP" --id agent-$k "${DATA[@]}" --shard $k --key agent-$k.key --hub-key hub.pub \
    --give-up 30 >agent-$k.log 2>&1 &
  PIDS+=($!)
done
wait_pid $HUB_PID 60 || fail "hub exited with status $?"
[ "$(tail -n 1 metrics.csv | cut -d, -f1,2)" = "5,2" ] || fail "training with the allowlisted agents did not complete"
echo PASS
