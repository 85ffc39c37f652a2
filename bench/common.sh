# The preamble and the ending that bench/compression.sh, bench/newton_cg.sh and bench/two_level.sh
# share (one runner, dsaga-bench-convergence, one table format), sourced by each once it has
# `root` (the checkout), `build` (the build directory), `out` (the results directory) and, for
# the summary, `all_settings`, `rounds`, `limit` and `start`. Not a script of its own.

# bench_prepare NAME: the dependencies, then only the benchmark's target (scripts/build.sh would
# build every program and test) in `build`, configured RelWithDebInfo with the benchmarks on;
# sets `tool` to it, creates `out` and writes the machine and the commit to OUT/machine.txt.
# NAME (the calling script) prefixes the message of a failed configure.
bench_prepare() {
  "$root/scripts/install-deps.sh"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSAGA_BUILD_BENCH=ON \
    -DBUILD_TESTING=OFF >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; echo "$1: configure failed (log above)" >&2; exit 1; }
  cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target dsaga-bench-convergence >/dev/null
  tool=$build/bench/convergence/dsaga-bench-convergence
  mkdir -p "$out"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" |
    tee "$out/machine.txt"
}

# bench_plot SETTING: the plot of the setting, under the file prefix the benchmark chose (the
# first "# TAG:" line of OUT/SETTING.txt); a failed plot does not stop the benchmark.
bench_plot() {
  tag=$(sed -n 's/^# \([^ :]*\): N = .*/\1/p' "$out/$1.txt" | head -n 1)
  "$root/bench/plot_convergence.sh" "$out" "$tag" || true
}

# bench_summary: every setting of `all_settings` found in OUT (OUT/<setting>.tsv) in one table,
# OUT/summary.txt, and this call's time since `start`.
bench_summary() {
  {
    printf 'setting\talgorithm\teta\tr(1e-3)\tMB(1e-3)\tr(1e-6)\tMB(1e-6)\tfinal\t@round\tpeak\tsetupMB\tMB/round\ts\n'
    for setting in $all_settings; do if [ -f "$out/$setting.tsv" ]; then cat "$out/$setting.tsv"; fi; done
  } | column -t -s $'\t' | tee "$out/summary.txt"
  echo "total: $(( $(date +%s) - start )) s (rounds cap $rounds, limit $limit)" | tee -a "$out/summary.txt"
}
