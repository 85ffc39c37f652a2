#!/usr/bin/env bash
# Bad configuration, bad data and a mismatched agent: each gives a clear error naming the file,
# line or option, and a non-zero exit; nothing crashes (exit codes >= 128 are signals) or hangs.
# Usage: bad_input.sh HUB AGENT
HUB=$1 AGENT=$2
source "$(dirname "$0")/lib.sh"

# expect CODE PATTERN -- COMMAND...: the command exits with CODE and prints PATTERN.
expect() {
  local code=$1 pattern=$2; shift 3
  local rc=0
  timeout 30 "$@" >"$WORK/out.log" 2>&1 || rc=$?
  [ $rc -eq "$code" ] || { cat "$WORK/out.log"; fail "'$*' exited $rc, expected $code"; }
  grep -qE -- "$pattern" "$WORK/out.log" || { cat "$WORK/out.log"; fail "'$*' did not say /$pattern/"; }
  echo "ok: $* -> $code, /$pattern/"
}

expect 0 "--agents" -- "$HUB" --help
expect 0 "--shard" -- "$AGENT" --help

printf '[hub]\nagents = 2\n[training]\netaa = 0.1\n' >"$WORK/typo.toml"
expect 2 "typo.toml:4:1: unknown key 'training.etaa'" -- "$HUB" --config "$WORK/typo.toml"
printf '[hub]\nagents = "two"\n' >"$WORK/type.toml"
expect 2 "type.toml:2:.*hub.agents: expected an integer" -- "$HUB" --config "$WORK/type.toml"
printf '[hub\nagents = 2\n' >"$WORK/syntax.toml"
expect 2 "syntax.toml:1:" -- "$HUB" --config "$WORK/syntax.toml"
expect 2 "cannot|No such file" -- "$HUB" --config "$WORK/missing.toml"
expect 2 "training.target needs training.f_star" -- "$HUB" --target 1e-6
expect 2 "--loss" -- "$HUB" --loss hinge
# The default aggregation (auto: two-level for dsaga) refreshes the whole table every round.
expect 2 "training.table_refresh: two-level rounds refresh the whole table" -- \
  "$HUB" --table-refresh 0.1
expect 2 "'bogus' is not an aggregation \(auto, two-level, newton-cg, mean, async\)" -- \
  "$HUB" --aggregation bogus
expect 2 "two-level is for dsaga" -- "$HUB" --algorithm fedavg --aggregation two-level
expect 1 "nohost" -- "$HUB" --listen "tcp://nohost:abc"
printf 'x' >"$WORK/a-file"
expect 1 "a-file: the checkpoint directory is not a directory" -- "$HUB" --checkpoint-dir "$WORK/a-file"
# A checkpoint of another format (an older release's) stops the start: passing over it would
# start afresh and replace that run's checkpoints.
mkdir -p "$WORK/old-ckpt"
printf 'DSGACKPT\007\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' \
  >"$WORK/old-ckpt/hub-00000000000000000005.ckpt"
expect 1 "hub-00000000000000000005.ckpt: checkpoint format 7, this build reads [0-9]+. Its run would be lost" -- \
  "$HUB" --checkpoint-dir "$WORK/old-ckpt"
[ -f "$WORK/old-ckpt/hub-00000000000000000005.ckpt" ] || fail "the old checkpoint was removed"

printf '1 1:0.5 2:1\n-1 3:x\n' >"$WORK/bad.svm"
expect 1 "bad.svm:2" -- "$AGENT" --data "$WORK/bad.svm" --hub tcp://127.0.0.1:9
expect 1 "missing.svm" -- "$AGENT" --data "$WORK/missing.svm" --hub tcp://127.0.0.1:9
expect 2 "data.shard" -- "$AGENT" --data "$WORK/bad.svm" --shards 4 --shard 4
printf '[data]\nshards = 0\n' >"$WORK/agent.toml"
expect 2 "data.shards" -- "$AGENT" --config "$WORK/agent.toml"

# An agent whose data does not fit the hub's model is refused and exits non-zero.
"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 1 --features 10 \
  --lambda 0.1 --no-progress >"$WORK/hub.log" 2>&1 &
HUB_PID=$!; PIDS+=($HUB_PID)
wait_for_file "$WORK/endpoint" 20
printf '1 1:0.5 20:1\n-1 3:2\n' >"$WORK/wide.svm"
expect 1 "refused.*20 features, the model has 10" -- \
  "$AGENT" --data "$WORK/wide.svm" --hub "$(cat "$WORK/endpoint")" --id wide --give-up 20
kill "$HUB_PID"
wait_pid "$HUB_PID" 10 || true
echo PASS
