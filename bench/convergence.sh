#!/usr/bin/env bash
# The convergence benchmark of ALGORITHM.md section 5: dSAGA against FedAvg, SCAFFOLD and
# distributed GD, K agents, IID and label-sorted shards, T = one local epoch and a quarter of
# one, through the real hub/agent code (in one process over ZeroMQ inproc). Baselines are run
# over a grid of step sizes (multiples of their default) and every run is listed, so the best
# is visible. Writes OUT/<setting>.txt (the table), OUT/*.csv (per-round metrics) and
# OUT/<setting>.png (suboptimality against rounds and against bytes, best step of each method).
# After the distributed methods of a problem, the single-node references on the same objective
# and F* (bench/single_node.py: scikit-learn's SAGA, epochs and seconds to 1e-3 and 1e-6;
# liblinear -s 0 on B1) go to OUT/<problem>-single-node.txt.
#
# Usage: bench/convergence.sh [BUILD_DIR] [--problems "B1 B2"] [--rounds R] [--agents K]
#                             [--eta-grid 1,0.3,0.1] [--out DIR] [--limit ROWS]
#                             [--no-single-node] [--t-values "1 0.25"]
# --limit keeps the first ROWS images (smoke runs; lambda = 1/ROWS, F* cached separately).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-bench
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
problems="B1 B2" rounds=60 agents=8 grid=1,0.3,0.1 out=$root/bench/results/convergence
limit=0 single_node=1 t_values="1 0.25"
while [ $# -gt 0 ]; do
  case "$1" in
    --problems) problems=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --eta-grid) grid=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --no-single-node) single_node=0; shift ;;
    --t-values) t_values=$2; shift 2 ;;
    *) echo "convergence.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "$single_node" = 1 ]; then "$root/scripts/install-deps.sh" bench; else "$root/scripts/install-deps.sh"; fi
"$root/scripts/build.sh" "$build" -DDSAGA_BUILD_BENCH=ON -DBUILD_TESTING=OFF >/dev/null
tool=$build/bench/convergence/dsaga-bench-convergence
mkdir -p "$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores" | tee "$out/machine.txt"
for problem in $problems; do
  for partition in iid by-label; do
    for t in $t_values; do
      setting=$problem-$partition-k$agents-T$t
      echo "== $setting"
      "$tool" --problem "$problem" --partition "$partition" --agents "$agents" --local-steps "$t" \
        --max-rounds "$rounds" --eta-grid "$grid" --limit "$limit" --out "$out" |
        tee "$out/$setting.txt"
      "$root/bench/plot_convergence.sh" "$out" "$setting"
    done
  done
  if [ "$single_node" = 1 ]; then
    # The tool cached the reference solver's F* for this problem (and limit) on its first run;
    # the single-node solvers are measured against that same value.
    tag=$problem; [ "$limit" != 0 ] && tag=$problem-limit$limit
    echo "== $tag single-node (scikit-learn SAGA, liblinear)"
    # Debian's python: the one with python3-sklearn and python3-numpy.
    /usr/bin/python3 "$root/bench/single_node.py" --problem "$problem" --limit "$limit" \
      --f-star "$(cat "$out/$tag-fstar.txt")" --out "$out" | tee "$out/$tag-single-node.txt"
  fi
done
echo "tables: $out/*.txt, plots: $out/*.png"
