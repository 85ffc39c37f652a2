#!/usr/bin/env bash
# A native hub trains with three ARM agents running under qemu-user: two aarch64 agents and one
# armhf agent (tests/qemu/CMakeLists.txt passes the static aarch64 build, which the full-system
# test needs anyway, for both aarch64 agents, and the dynamic armhf build), on 600 Fashion-MNIST
# test images split by label (non-IID), over tcp://127.0.0.1. The same run with three native agents and the same seeds
# must give the same objective at every round to <= 1e-9 relative (armhf does its double
# arithmetic without SIMD, so sums may differ in the last bits; nothing more is allowed).
# Usage: train_emulated.sh HUB NATIVE_AGENT A64_AGENT_0 A64_AGENT_1 ARMHF_AGENT A64_SYSROOT ARMHF_SYSROOT
HUB=$1 NATIVE=$2 A64S=$3 A64=$4 HF=$5 A64_ROOT=$6 HF_ROOT=$7
source "$(dirname "$0")/../integration/lib.sh"

QEMU_A64=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64 not installed"
QEMU_ARM=$(command -v qemu-arm-static || command -v qemu-arm) || fail "qemu-arm not installed"
DATA=(--format fashion-mnist --split test --limit 600 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6 --shards 3 --partition by-label)
ROUNDS=8

# run NAME AGENT_COMMAND_0 -- AGENT_COMMAND_1 -- AGENT_COMMAND_2: one hub, three agents.
run() {
  local name=$1; shift
  local dir=$WORK/$name; mkdir -p "$dir"
  "$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$dir/endpoint" --agents 3 --lambda 1e-3 \
    --seed 11 --max-rounds $ROUNDS --metrics "$dir/metrics.csv" --model "$dir/model.txt" \
    --no-progress >"$WORK/$name-hub.log" 2>&1 &
  local hub=$!; PIDS+=($hub)
  wait_for_file "$dir/endpoint" 20
  local endpoint; endpoint=$(cat "$dir/endpoint")
  local k=0 cmd=() agents=()
  for arg in "$@" --; do
    if [ "$arg" = -- ]; then
      "${cmd[@]}" --hub "$endpoint" --id "agent-$k" "${DATA[@]}" --shard $k --give-up 120 \
        >"$WORK/$name-agent-$k.log" 2>&1 &
      agents+=($!); PIDS+=($!); k=$((k + 1)); cmd=()
    else
      cmd+=("$arg")
    fi
  done
  local start; start=$(date +%s)
  # Fail at once when every agent has exited but the hub still waits (it would wait forever).
  local i=0 alive
  while kill -0 $hub 2>/dev/null; do
    alive=0; for p in "${agents[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || { sleep 5; kill -0 $hub 2>/dev/null && fail "$name: every agent exited, the hub still waits"; break; }
    i=$((i + 1)); [ $i -gt 4000 ] && fail "$name: hub still running after 400 s"
    sleep 0.1
  done
  wait_pid $hub 1 || fail "$name: hub exited with status $?"
  for p in "${agents[@]}"; do wait_pid "$p" 60 || fail "$name: agent $p exited with status $?"; done
  echo "$name: $ROUNDS rounds in $(( $(date +%s) - start )) s"
}

run native "$NATIVE" -- "$NATIVE" -- "$NATIVE"
run emulated "$QEMU_A64" -L "$A64_ROOT" "$A64S" -- "$QEMU_A64" -L "$A64_ROOT" "$A64" -- \
  "$QEMU_ARM" -L "$HF_ROOT" "$HF"

# round,agents,participants,objective,...: the objective is printed with %.17g.
paste -d, <(cut -d, -f1,4 "$WORK/native/metrics.csv") <(cut -d, -f1,4 "$WORK/emulated/metrics.csv") |
awk -F, 'NR > 1 {
  n++
  if ($1 != $3) { print "FAIL: round columns differ: " $0; bad = 1 }
  d = $2 - $4; if (d < 0) d = -d
  r = d / ($2 < 0 ? -$2 : $2)
  if (r > worst) worst = r
  last_native = $2; last_emulated = $4
} END {
  printf "rows %d, final objective native %s emulated %s, max relative difference %.3g\n",
         n, last_native, last_emulated, worst
  if (n < 2) { print "FAIL: fewer than 2 rounds"; exit 1 }
  if (!(worst <= 1e-9)) { print "FAIL: relative difference above 1e-9"; exit 1 }
  if (bad) exit 1
}'
echo PASS
