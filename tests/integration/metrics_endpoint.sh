#!/usr/bin/env bash
# The hub's live metrics endpoint (--metrics-listen, Prometheus text format 0.0.4) and the
# daemons' systemd notifications, with real processes on loopback: a hub (plain dSAGA for 150
# short rounds, so that many scrapes fall inside training; F* from dsaga-reference; checkpoints)
# and 2 agents on 2500 Fashion-MNIST images. (Two-level's metrics: tests/unit/metrics_test.cpp.)
#   1. /metrics is scraped with curl over and over while the hub admits, initializes and trains;
#      EVERY line of every scrape must be a HELP/TYPE comment or a `name{labels} value` sample
#      whose value parses as a float (HELP before TYPE before the samples of that family,
#      counters named *_total); the required metrics are present; the round never goes back
#      and rises between scrapes during training; the bare port listens on 127.0.0.1 and a
#      second hub cannot share it; a Join refused (another loss) is counted.
#   2. After the run: a hub started again on the same checkpoint directory resumes finished and
#      serves its final state (phase finished, the last round) while it lingers.
#   3. With libsystemd (WITH_SYSTEMD=1) and python3: NOTIFY_SOCKET points at datagram sockets
#      this test listens on; the hub sends READY=1 (once listening), STATUS= lines, WATCHDOG=1
#      pings (WATCHDOG_USEC set) and STOPPING=1; the agent READY=1 once configured by the hub.
# Built without HTTP support (WITH_HTTP=0): --metrics-listen must fail with exit 2 and a clear
# message; parts 1 and 2 are then skipped.
# Usage: metrics_endpoint.sh HUB AGENT REFERENCE WITH_HTTP WITH_SYSTEMD
HUB=$1 AGENT=$2 REFERENCE=$3 WITH_HTTP=$4 WITH_SYSTEMD=$5
source "$(dirname "$0")/lib.sh"

if [ "$WITH_HTTP" != 1 ]; then
  rc=0
  "$HUB" --metrics-listen 9464 --agents 1 >"$WORK/no-http.log" 2>&1 || rc=$?
  [ $rc -eq 2 ] || fail "without HTTP support --metrics-listen exited with $rc, expected 2"
  grep -q 'built without HTTP support' "$WORK/no-http.log" ||
    fail "without HTTP support: the error does not say so: $(cat "$WORK/no-http.log")"
  echo "built without HTTP support: --metrics-listen refused with exit 2"
else
  command -v curl >/dev/null || fail "curl is needed to scrape /metrics"
fi
NOTIFY=0
if [ "$WITH_SYSTEMD" = 1 ]; then
  if command -v python3 >/dev/null; then NOTIFY=1; else echo "no python3: notifications not checked"; fi
fi

# check_scrape FILE: every line of the exposition; writes FILE.samples ("name{labels} value").
check_scrape() {
  awk -v file="$1" '
  function err(why) { printf "FAIL: %s line %d: %s: %s\n", file, NR, why, $0; bad = 1 }
  /^# HELP / {
    if (NF < 4 || $3 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) err("bad HELP line")
    help = $3; next
  }
  /^# TYPE / {
    if (NF != 4 || $3 != help) err("TYPE without its HELP")
    if ($4 !~ /^(counter|gauge|untyped|summary|histogram)$/) err("unknown type")
    if ($4 == "counter" && $3 !~ /_total$/) err("counter not named *_total")
    family = $3; next
  }
  /^#/ { next }  # any other comment
  {
    if (!match($0, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { err("not a sample"); next }
    name = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1); labels = ""
    if (substr(rest, 1, 1) == "{") {
      if (!match(rest, /^\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\}/)) {
        err("bad labels"); next
      }
      labels = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
    }
    if (rest !~ /^ [^ ]+( -?[0-9]+)?$/) { err("not `name{labels} value [timestamp]`"); next }
    split(substr(rest, 2), parts, " "); value = parts[1]
    if (value !~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ && value !~ /^([-+]?Inf|NaN)$/)
      err("value is not a float")
    if (name != family) err("sample outside its family " family)
    print name labels, value > (file ".samples")
    samples++
  }
  END { if (samples == 0) { print "FAIL: " file ": no samples"; bad = 1 } exit bad }' "$1"
}

# value FILE NAME: the value of sample NAME (full name with labels) in FILE.samples, or "".
value() { awk -v n="$2" '$1 == n { print $2 }' "$1.samples"; }

# wait_for_log FILE PATTERN SECONDS: the first line of FILE matching PATTERN.
wait_for_log() {
  local i=0
  until grep -m1 -E "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt $(($3 * 10)) ] && fail "timed out waiting for '$2' in $1"
    sleep 0.1
  done
}

# listen_notify NAME: a stand-in for systemd's notification socket at $WORK/NAME.sock, writing
# what it receives to $WORK/NAME.notify.
listen_notify() {
  python3 "$(dirname "$0")/notify_listener.py" "$WORK/$1.sock" "$WORK/$1.notify" \
    >"$WORK/$1-listener.log" 2>&1 &
  PIDS+=($!)
  local i=0
  until [ -S "$WORK/$1.sock" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "the notification listener $1 did not start"
    sleep 0.1
  done
}

DATA=(--format fashion-mnist --split test --limit 2500 --scale 0.00392156862745098 --normalize
      --bias --positive 0,2,4,6)
"$REFERENCE" "${DATA[@]}" --lambda 1e-4 --quiet --output "$WORK/fstar" >/dev/null ||
  fail "dsaga-reference failed"
HUB_ARGS=(--listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 2 --lambda 1e-4
          --f-star "$(cat "$WORK/fstar")" --aggregation mean --max-rounds 150
          --checkpoint-dir "$WORK/ckpt" --no-progress)
[ "$WITH_HTTP" = 1 ] && HUB_ARGS+=(--metrics-listen 0)  # any free port on 127.0.0.1

hub_env=() agent_env=()
if [ $NOTIFY = 1 ]; then
  listen_notify hub
  listen_notify agent
  hub_env=(NOTIFY_SOCKET="$WORK/hub.sock" WATCHDOG_USEC=300000)
  agent_env=(NOTIFY_SOCKET="$WORK/agent.sock")  # agent-0's; agent-1 runs outside systemd
fi
env "${hub_env[@]}" "$HUB" "${HUB_ARGS[@]}" --metrics "$WORK/metrics.csv" >"$WORK/hub.log" 2>&1 &
hub=$!; PIDS+=($hub)
wait_for_file "$WORK/endpoint" 20
if [ "$WITH_HTTP" = 1 ]; then
  url=$(wait_for_log "$WORK/hub.log" 'metrics at http://' 20 | sed 's/.*metrics at //')
  case "$url" in http://127.0.0.1:[0-9]*/metrics) ;; *) fail "metrics not on 127.0.0.1: $url" ;; esac
  curl -fsS "$url" >"$WORK/scrape-0.txt" || fail "no answer at $url"
  check_scrape "$WORK/scrape-0.txt" || fail "scrape before any agent"
  [ "$(value "$WORK/scrape-0.txt" 'dsaga_hub_phase{phase="admitting"}')" = 1 ] ||
    fail "a hub without agents is not admitting"
  curl -sS -o /dev/null -w '%{http_code}' "${url%/metrics}/nothing-here" | grep -qx 404 ||
    fail "an unknown path is not 404"
  # A second hub cannot take the same metrics port (it would answer half the scrapes).
  port=${url#http://127.0.0.1:}; port=${port%/metrics}
  rc=0
  "$HUB" --listen 'tcp://127.0.0.1:*' --agents 2 --metrics-listen "$port" >"$WORK/hub-same-port.log" 2>&1 ||
    rc=$?
  [ $rc -eq 1 ] && grep -q "metrics endpoint 127.0.0.1:$port: Address already in use" \
    "$WORK/hub-same-port.log" || fail "a second hub on metrics port $port: exit $rc, $(cat "$WORK/hub-same-port.log")"
fi
# An agent of another problem (squared loss) is refused at its Join: counted before training.
rc=0
"$AGENT" --hub "$(cat "$WORK/endpoint")" --id intruder "${DATA[@]}" --loss squared --give-up 20 \
  >"$WORK/intruder.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "an agent with another loss was not refused"
if [ "$WITH_HTTP" = 1 ]; then
  curl -fsS "$url" >"$WORK/scrape-refused.txt" || fail "no answer at $url"
  check_scrape "$WORK/scrape-refused.txt" || fail "scrape after the refusal"
  [ "$(value "$WORK/scrape-refused.txt" dsaga_hub_joins_refused_total)" = 1 ] ||
    fail "the refused Join is not counted in dsaga_hub_joins_refused_total"
fi
agents=()
for i in 0 1; do
  e=(); [ $i = 0 ] && e=("${agent_env[@]}")
  env "${e[@]}" "$AGENT" --hub "$(cat "$WORK/endpoint")" --id "agent-$i" "${DATA[@]}" --shards 2 --shard "$i" \
    --partition by-label --give-up 60 >"$WORK/agent-$i.log" 2>&1 &
  agents+=($!); PIDS+=($!)
done

# Scrape while the hub runs (it exits at the target); a scrape cut short by the exit is dropped.
n=0
if [ "$WITH_HTTP" = 1 ]; then
  while kill -0 $hub 2>/dev/null; do
    n=$((n + 1))
    curl -fsS --max-time 5 "$url" >"$WORK/scrape-$n.txt" 2>/dev/null || { rm -f "$WORK/scrape-$n.txt"; n=$((n - 1)); }
    [ $n -ge 5000 ] && fail "the hub is still running after 5000 scrapes"
  done
fi
wait_pid $hub 120 || fail "hub exited with status $?"
for p in "${agents[@]}"; do wait_pid "$p" 30 || fail "agent $p exited with status $?"; done
grep -q 'round cap 150 reached' "$WORK/hub.log" || fail "the hub did not run its 150 rounds"
last_round=$(tail -n 1 "$WORK/metrics.csv" | cut -d, -f1)

if [ "$WITH_HTTP" = 1 ]; then
  prev=0 training=0 rising=0 first_training=""
  for i in $(seq 1 $n); do
    f="$WORK/scrape-$i.txt"
    check_scrape "$f" || fail "scrape $i"
    r=$(value "$f" dsaga_hub_round)
    [ "$r" -ge "$prev" ] || fail "scrape $i: round went back from $prev to $r"
    if [ "$(value "$f" 'dsaga_hub_phase{phase="training"}')" = 1 ]; then
      training=$((training + 1))
      [ -z "$first_training" ] && first_training=$r
      [ "$r" -gt "$first_training" ] && rising=1
      last_training=$f
    fi
    prev=$r
  done
  echo "$n scrapes, $training while training (rounds $first_training to $prev); the run ended at round $last_round"
  [ $training -ge 2 ] || fail "fewer than 2 scrapes while training"
  [ $rising = 1 ] || fail "the round did not rise between scrapes while training"
  [ "$prev" -le "$last_round" ] || fail "a scrape saw round $prev after the last round $last_round"
  grep -qE '^dsaga_hub_build_info\{version="[^"]+",algorithm="dsaga",aggregation="mean"\} 1$' \
    "$last_training.samples" || fail "no dsaga_hub_build_info while training"
  for name in dsaga_hub_start_time_seconds dsaga_hub_round dsaga_hub_objective \
              dsaga_hub_suboptimality dsaga_hub_last_round_duration_seconds \
              dsaga_hub_agents_admitted dsaga_hub_agents_connected dsaga_hub_late_updates_total \
              dsaga_hub_joins_refused_total dsaga_hub_messages_rejected_total \
              'dsaga_hub_transport_bytes_total{direction="in"}' \
              'dsaga_hub_transport_bytes_total{direction="out"}' \
              dsaga_hub_checkpoints_total dsaga_hub_checkpoint_age_seconds; do
    awk -v n="$name" 'index($0, n " ") == 1 { found = 1 } END { exit !found }' \
      "$last_training.samples" || fail "no $name while training"
  done
  [ "$(value "$last_training" dsaga_hub_agents_connected)" = 2 ] || fail "not 2 agents connected"
  if grep -q '^dsaga_hub_two_level' "$last_training.samples"; then fail "two-level metrics in mean mode"; fi
  in=$(value "$last_training" 'dsaga_hub_transport_bytes_total{direction="in"}')
  [ "$in" -gt 0 ] || fail "no bytes in while training"
  awk -v s="$(value "$last_training" dsaga_hub_suboptimality)" 'BEGIN { exit !(s > 0 && s < 10) }' ||
    fail "suboptimality out of range"

  # 2. After the run: the same checkpoints, a hub that resumes finished and lingers 15 s.
  "$HUB" "${HUB_ARGS[@]}" >"$WORK/hub-after.log" 2>&1 &
  after=$!; PIDS+=($after)
  url=$(wait_for_log "$WORK/hub-after.log" 'metrics at http://' 20 | sed 's/.*metrics at //')
  wait_for_log "$WORK/hub-after.log" 'resumed from' 20 >/dev/null
  # Its first snapshot (published before the checkpoint is read) may still be served briefly.
  i=0
  while :; do
    rm -f "$WORK/scrape-after.txt.samples"
    curl -fsS "$url" >"$WORK/scrape-after.txt" || fail "no answer after the run"
    check_scrape "$WORK/scrape-after.txt" || fail "scrape after the run"
    [ "$(value "$WORK/scrape-after.txt" 'dsaga_hub_phase{phase="finished"}')" = 1 ] && break
    i=$((i + 1)); [ $i -gt 50 ] && fail "the resumed hub does not report finished"
    sleep 0.1
  done
  r=$(value "$WORK/scrape-after.txt" dsaga_hub_round)
  [ "$r" -ge "$last_round" ] || fail "after the run: round $r, below the last round $last_round"
  echo "after the run: phase finished, round $r"
  kill -TERM $after
  wait_pid $after 30 || true
fi

if [ $NOTIFY = 1 ]; then
  sleep 0.2  # the last datagrams reach the listeners
  echo "hub notifications: $(wc -l <"$WORK/hub.notify"); first: $(head -n 1 "$WORK/hub.notify")"
  head -n 1 "$WORK/hub.notify" | grep -q '^READY=1 | STATUS=admitting: 0 of 2 agents$' ||
    fail "the hub's first notification is not READY=1 while admitting"
  [ "$(grep -c 'READY=1' "$WORK/hub.notify")" = 1 ] || fail "READY=1 sent more than once"
  grep -q '^STATUS=round [0-9]*/150, F=' "$WORK/hub.notify" || fail "no round STATUS= line"
  grep -q '^WATCHDOG=1$' "$WORK/hub.notify" || fail "no WATCHDOG=1 ping with WATCHDOG_USEC set"
  grep -q '^STOPPING=1 | STATUS=finished after round' "$WORK/hub.notify" || fail "no STOPPING=1"
  grep -q '^READY=1 | STATUS=joined the hub at tcp://127.0.0.1:[0-9]*: [0-9]* samples$' \
    "$WORK/agent.notify" || fail "the agent sent no READY=1 once configured"
  grep -q '^STATUS=round [0-9]* answered' "$WORK/agent.notify" || fail "no agent STATUS= line"
  grep -q '^STOPPING=1' "$WORK/agent.notify" || fail "the agent sent no STOPPING=1"
  if grep -q WATCHDOG "$WORK/agent.notify"; then fail "the agent pinged a watchdog it was not given"; fi
fi
echo PASS
