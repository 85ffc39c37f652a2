#!/usr/bin/env bash
# Plots one setting of the convergence benchmark: OUT/SETTING.png with the relative
# suboptimality of each method (at the step size that ended lowest) against rounds and against
# bytes per agent. Usage: bench/plot_convergence.sh OUT SETTING   (e.g. B1-by-label-k8-T1)
set -euo pipefail
out=$1 setting=$2
# The plot: each method at the step that got lowest at the end. A run that diverged ends in
# nan or inf, which `sort -g` would put first: only finite final values compete.
best=()
# Every method with a file here (the benchmark names them SETTING-METHOD-eta<x>.csv).
methods=$(for c in "$out/$setting"-*-eta*.csv; do
            [ -f "$c" ] || continue
            c=${c##*/}; c=${c#"$setting-"}; echo "${c%-eta*}"
          done | sort -u)
for m in $methods; do
  f=$(for c in "$out/$setting-$m-eta"*.csv; do
        [ -f "$c" ] || continue
        last=$(tail -n 1 "$c" | cut -d, -f3)
        # (an if, not &&: a false test ending the loop would fail the pipeline under pipefail)
        if [[ $last =~ ^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$ ]]; then printf '%s %s\n' "$last" "$c"; fi
      done | sort -g | head -n 1 | cut -d' ' -f2)
  # Every step of this method diverged: plot its first run anyway (up to where it blew up).
  if [ -z "$f" ]; then
    for c in "$out/$setting-$m-eta"*.csv; do [ -f "$c" ] && { f=$c; break; }; done
  fi
  [ -n "$f" ] && best+=("$f")
done
if [ ${#best[@]} -eq 0 ]; then
  echo "plot_convergence.sh: no metrics file $out/$setting-*-eta*.csv; no plot" >&2
  exit 1
fi
plots=() plots_b=()
for f in "${best[@]}"; do
  name=$(basename "$f" .csv); name=${name#"$setting-"}
  # Rows without F (Newton-CG's product rounds: message round trips that measure nothing) are
  # left out, so each line joins the rounds that measured F; x stays the round trip.
  src="< grep -v ',nan,nan,' '$f'"
  plots+=("\"$src\" every ::1 using 1:(\$3 != \$3 ? 1/0 : \$3 > 0 ? \$3 : 1e-16) with lines lw 2 title '$name'")
  plots_b+=("\"$src\" every ::1 using (\$4 / 1e6):(\$3 != \$3 ? 1/0 : \$3 > 0 ? \$3 : 1e-16) with lines lw 2 title '$name'")
done
gnuplot <<GP
set terminal pngcairo size 1200,480 noenhanced
set output "$out/$setting.png"
set datafile separator ","
set multiplot layout 1,2 title "$setting: relative suboptimality (best step of each method)"
set logscale y; set format y "%.0e"; set grid; set key top right
set xlabel "round (message round trips)"; set ylabel "(F - F*) / F*"
plot $(IFS=,; echo "${plots[*]}")
set xlabel "MB per agent (both directions)"
plot $(IFS=,; echo "${plots_b[*]}")
unset multiplot
GP
