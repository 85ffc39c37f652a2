#!/usr/bin/env bash
# Plots one setting of the convergence benchmark: OUT/SETTING.png with the relative
# suboptimality of each method (at the step size that ended lowest) against rounds and against
# bytes per agent. Usage: bench/plot_convergence.sh OUT SETTING   (e.g. B1-by-label-k8-T1)
set -euo pipefail
out=$1 setting=$2
# The plot: each method at the step that got lowest at the end.
best=()
for m in dsaga fedavg scaffold gd; do
  f=$(for c in "$out/$setting-$m-eta"*.csv; do
        [ -f "$c" ] && printf '%s %s\n' "$(tail -n 1 "$c" | cut -d, -f3)" "$c"
      done | sort -g | head -n 1 | cut -d' ' -f2)
  [ -n "$f" ] && best+=("$f")
done
plots=() plots_b=()
for f in "${best[@]}"; do
  name=$(basename "$f" .csv); name=${name#"$setting-"}
  plots+=("'$f' every ::1 using 1:(\$3 > 0 ? \$3 : 1e-16) with lines lw 2 title '$name'")
  plots_b+=("'$f' every ::1 using (\$4 / 1e6):(\$3 > 0 ? \$3 : 1e-16) with lines lw 2 title '$name'")
done
gnuplot <<GP
set terminal pngcairo size 1200,480 noenhanced
set output "$out/$setting.png"
set datafile separator ","
set multiplot layout 1,2 title "$setting: relative suboptimality (best step of each method)"
set logscale y; set format y "%.0e"; set grid; set key top right
set xlabel "round"; set ylabel "(F - F*) / F*"
plot $(IFS=,; echo "${plots[*]}")
set xlabel "MB per agent (both directions)"
plot $(IFS=,; echo "${plots_b[*]}")
unset multiplot
GP
