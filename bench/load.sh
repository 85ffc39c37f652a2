#!/usr/bin/env bash
# Hub load benchmark: one dsaga-hub process and AGENTS agents (threads, split over two
# processes, each agent its own tcp connection) on 127.0.0.1, Fashion-MNIST test split in IID
# shards of 10000/AGENTS images, dSAGA for ROUNDS rounds. Reports the hub's round latency
# (median and max of round_seconds), CPU time, peak resident memory and bytes per second.
# Usage: bench/load.sh BUILD_DIR [AGENTS] [ROUNDS]
set -euo pipefail
build=${1:?usage: bench/load.sh BUILD_DIR [AGENTS] [ROUNDS]}
agents=${2:-1000} rounds=${3:-20}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$build/hub/dsaga-hub" --listen 'tcp://127.0.0.1:*' --endpoint-file "$work/endpoint" \
  --agents "$agents" --lambda 1e-4 --max-rounds "$rounds" --metrics "$work/metrics.csv" \
  --no-progress --log-level warn >"$work/hub.log" 2>&1 &
hub=$!; pids+=($hub)
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
half=$((agents / 2))
"$build/bench/load/dsaga-bench-load-agents" --hub "$(cat "$work/endpoint")" --agents $half \
  --first 0 --shards "$agents" >"$work/load0.log" 2>&1 &
pids+=($!)
"$build/bench/load/dsaga-bench-load-agents" --hub "$(cat "$work/endpoint")" \
  --agents $((agents - half)) --first $half --shards "$agents" >"$work/load1.log" 2>&1 &
pids+=($!)
peak=0 cpu=0
tick=$(getconf CLK_TCK)
while kill -0 $hub 2>/dev/null; do
  rss=$(awk '/^VmHWM/ { print $2 }' /proc/$hub/status 2>/dev/null || echo 0)
  [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
  t=$(awk '{ print $14 + $15 }' /proc/$hub/stat 2>/dev/null || echo "")
  [ -n "$t" ] && cpu=$t
  sleep 0.2
done
wait $hub || { cat "$work/hub.log"; exit 1; }
wait "${pids[@]:1}" || { tail "$work"/load*.log; exit 1; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
# Rounds 1..R (round 0 is the init round): round_seconds is column 7, elapsed 8, bytes 11+12.
med=$(awk -F, 'NR > 2 { print $7 }' "$work/metrics.csv" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
awk -F, -v peak="$peak" -v cpu="$cpu" -v tick="$tick" -v agents="$agents" -v med="$med" 'NR == 2 { start = $8 }
  NR > 2 { n++; if ($7 > max) max = $7; last = $8; bytes = $11 + $12 } END {
    printf "agents %d, rounds %d: round latency median %.3f s, max %.3f s\n", agents, n, med, max
    printf "hub CPU %.1f s over %.1f s of rounds; peak resident memory %.1f MB\n", cpu / tick, last - start, peak / 1024
    printf "traffic %.1f MB in and out, %.1f MB/s while training\n", bytes / 1e6, bytes / 1e6 / (last - start)
  }' "$work/metrics.csv"
