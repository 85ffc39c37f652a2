#!/usr/bin/env bash
# dsaga-predict against models and data written here: for each loss, a model with random
# weights and random LIBSVM rows; the expected counts (correct rows, confusion matrix, RMSE) are
# computed by awk from the same files, independently of dsaga. Then the refusals: a model/data
# mismatch (width, classes, loss, recorded data options) and malformed model files end with
# status 1 and a message naming the file or option at fault, never a crash.
# Usage: predict.sh DSAGA_PREDICT DSAGA_REFERENCE
source "$(dirname "$0")/lib.sh"
predict_setup "$@"

# gen_data FILE ROWS D KIND SEED: LIBSVM rows over features 1..D (each present with p = 0.8),
# labels: binary -1/+1, multi 0..2, real values.
gen_data() {
  awk -v n="$2" -v d="$3" -v kind="$4" -v seed="$5" 'BEGIN {
    srand(seed)
    for (i = 0; i < n; i++) {
      line = ""
      for (k = 1; k <= d; k++) if (rand() < 0.8) line = line " " k ":" sprintf("%.4f", rand() * 4 - 2)
      if (kind == "binary") y = rand() < 0.5 ? -1 : 1
      else if (kind == "multi") y = int(rand() * 3)
      else y = sprintf("%.3f", rand() * 10 - 5)
      print y line
    }
  }' >"$1"
}

# gen_model FILE FORMAT LOSS C D DATA_OPTIONS SEED: a model with random weights in [-1, 1].
# DATA_OPTIONS: "unknown" or the lines after "data-options recorded" joined by ';'.
gen_model() {
  awk -v fmt="$2" -v loss="$3" -v C="$4" -v D="$5" -v opts="$6" -v seed="$7" 'BEGIN {
    srand(seed)
    print "# written by predict.sh"
    print "format " fmt; print "loss " loss; print "classes " C; print "features " D
    print "lambda 0.001"; print "round 3"; print "objective nan"
    if (fmt == "dsaga-model-2") {
      if (opts == "unknown") print "data-options unknown"
      else { print "data-options recorded"; n = split(opts, o, ";"); for (i = 1; i <= n; i++) print o[i] }
    }
    print "w"
    for (k = 0; k < D; k++) {
      line = ""
      for (c = 0; c < C; c++) line = line (c ? " " : "") sprintf("%.6f", rand() * 2 - 1)
      print line
    }
  }' >"$1"
}

# expect MODEL DATA BIAS SCALE: awk's own evaluation, printing "correct n", the confusion
# matrix rows ("confusion t c count") or "rmse value", and each predicted label on "pred" lines.
expect() {
  awk -v bias="$3" -v scale="$4" '
    FNR == NR {
      if ($1 == "loss") loss = $2
      if ($1 == "classes") C = $2
      if ($1 == "features") D = $2
      if (inw && $0 !~ /^#/) { for (c = 1; c <= NF; c++) w[k, c - 1] = $c; k++ }
      if ($1 == "w") { inw = 1; k = 0 }
      next
    }
    {
      for (c = 0; c < C; c++) z[c] = bias ? w[D - 1, c] : 0
      for (f = 2; f <= NF; f++) {
        split($f, kv, ":")
        for (c = 0; c < C; c++) z[c] += scale * kv[2] * w[kv[1] - 1, c]
      }
      n++
      if (loss == "logistic") { p = z[0] > 0 ? 1 : -1; correct += (p == $1) }
      else if (loss == "multinomial") {
        p = 0; for (c = 1; c < C; c++) if (z[c] > z[p]) p = c
        correct += (p == $1); conf[$1, p]++
      } else { p = z[0]; se += (z[0] - $1) ^ 2 }
      print "pred " p
    }
    END {
      if (loss == "squared") { printf "rmse %.12g\n", sqrt(se / n); exit }
      print "correct " correct " " n
      if (loss == "multinomial")
        for (t = 0; t < C; t++) for (c = 0; c < C; c++) print "confusion " t " " c " " (conf[t, c] + 0)
    }' "$1" "$2"
}

# --- logistic: a recorded model with a bias column and a scale --------------------------------
gen_data bin.svm 300 5 binary $((SEED + 1))
gen_model bin.txt dsaga-model-2 logistic 1 6 "scale 0.5;normalize no;bias yes;positive default" $((SEED + 2))
"$PREDICT" --model bin.txt --data bin.svm --features 5 --bias --scale 0.5 --output bin.out >bin.log 2>&1 ||
  fail "logistic: dsaga-predict failed: $(cat bin.log)"
expect bin.txt bin.svm 1 0.5 >bin.expect
read -r correct n < <(awk '$1 == "correct" { print $2, $3 }' bin.expect)
grep -q "^accuracy .* ($correct/$n)\$" bin.log || fail "logistic: expected $correct/$n correct: $(cat bin.log)"
[ "$(awk '$1 == "pred" { print $2 }' bin.expect)" = "$(cat bin.out)" ] || fail "logistic: --output differs from awk's predictions"
auc=$(awk '$1 == "auc" { print $2 }' bin.log)
awk -v a="$auc" 'BEGIN { exit !(a >= 0 && a <= 1) }' || fail "logistic: auc '$auc' is not in [0, 1]"
grep -q '^log-loss [0-9]' bin.log || fail "logistic: no log-loss line"
# --probabilities: the 'labels' line, then p(+1) + p(-1) = 1 and the label agreeing with p(+1).
"$PREDICT" --model bin.txt --data bin.svm --features 5 --bias --scale 0.5 --output binp.out \
  --probabilities -q >/dev/null || fail "--probabilities failed"
[ "$(head -1 binp.out)" = "labels 1 -1" ] || fail "--probabilities: first line '$(head -1 binp.out)'"
awk 'NR > 1 { if (($2 + $3 - 1) ^ 2 > 1e-24 || ($1 == 1) != ($2 > 0.5)) exit 1 }' binp.out ||
  fail "--probabilities: rows do not add up to 1 or disagree with the label"

# --- multinomial, 3 classes: a hub-style model (data options unknown) --------------------------
gen_data multi.svm 400 4 multi $((SEED + 3))
gen_model multi.txt dsaga-model-2 multinomial 3 4 unknown $((SEED + 4))
"$PREDICT" --model multi.txt --data multi.svm --features 4 --output multi.out >multi.log 2>multi.err ||
  fail "multinomial: dsaga-predict failed: $(cat multi.log multi.err)"
grep -q 'does not record the data options' multi.err || fail "multinomial: no note on the unknown data options"
expect multi.txt multi.svm 0 1 >multi.expect
read -r correct n < <(awk '$1 == "correct" { print $2, $3 }' multi.expect)
grep -q "^accuracy .* ($correct/$n)\$" multi.log || fail "multinomial: expected $correct/$n correct: $(cat multi.log)"
# The printed matrix (after its title and column header) against awk's counts.
got=$(awk '/^confusion/ { m = NR } m && NR > m + 1 { for (c = 2; c <= NF; c++) print "confusion " $1 " " (c - 2) " " $c }' multi.log)
want=$(grep '^confusion' multi.expect)
[ "$got" = "$want" ] || fail "multinomial: confusion matrix differs: got
$got
expected
$want"
[ "$(awk '$1 == "pred" { print $2 }' multi.expect)" = "$(cat multi.out)" ] || fail "multinomial: --output differs"

# --- squared, read from an old "dsaga-model-1" file ---------------------------------------------
gen_data sq.svm 200 4 real $((SEED + 5))
gen_model sq.txt dsaga-model-1 squared 1 4 unknown $((SEED + 6))
"$PREDICT" --model sq.txt --data sq.svm --features 4 --output sq.out >sq.log 2>&1 ||
  fail "squared (dsaga-model-1): dsaga-predict failed: $(cat sq.log)"
want=$(awk '$1 == "rmse" { print $2 }' < <(expect sq.txt sq.svm 0 1))
got=$(awk '$1 == "rmse" { print $2 }' sq.log)
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(a != "" && d * d <= 1e-18 * b * b) }' ||
  fail "squared: rmse $got, awk says $want"

# --- a model from dsaga-reference records its data options and round-trips ---------------------
"$REFERENCE" --data bin.svm --features 5 --bias --scale 0.5 --lambda 0.01 --model ref.txt -q >/dev/null ||
  fail "dsaga-reference --model failed"
grep -q '^data-options recorded$' ref.txt && grep -q '^bias yes$' ref.txt && grep -q '^scale 0.5$' ref.txt ||
  fail "dsaga-reference did not record its data options: $(sed -n '1,20p' ref.txt)"
"$PREDICT" --model ref.txt --data bin.svm --features 5 --bias --scale 0.5 -q >ref.log ||
  fail "a dsaga-reference model with its own data options was refused"
read -r correct n < <(awk '$1 == "correct" { print $2, $3 }' < <(expect ref.txt bin.svm 1 0.5))
grep -q "^accuracy .* ($correct/$n)\$" ref.log || fail "reference model: expected $correct/$n: $(cat ref.log)"

# --- refusals: status 1 (2 for bad options), a message naming the cause, never a crash ----------
# refuse NAME STATUS PATTERN -- ARGS...
refuse() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local rc=0
  "$PREDICT" "$@" >"refuse.out" 2>"refuse.err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "$name: status $rc, expected $want: $(cat refuse.err)"
  grep -qE -- "$pattern" refuse.err || fail "$name: message does not match '$pattern': $(cat refuse.err)"
}
# A hub's model does not know the bias: the width gives it away.
gen_model binu.txt dsaga-model-2 logistic 1 6 unknown $((SEED + 7))
refuse "width, bias forgotten" 1 "bin.svm: 5 columns .*binu.txt.* features 6; was it trained with --bias" -- \
  --model binu.txt --data bin.svm --features 5 -q
refuse "width, too wide" 1 "multi.svm: 6 columns .*multi.txt.* features 4" -- \
  --model multi.txt --data multi.svm --features 6 -q
refuse "recorded bias" 1 "--bias no: the model \(ref.txt\) was trained with bias yes" -- \
  --model ref.txt --data bin.svm --features 6 --scale 0.5
refuse "recorded scale" 1 "--scale 1: the model \(ref.txt\) was trained with scale 0.5" -- \
  --model ref.txt --data bin.svm --features 5 --bias
refuse "recorded positive" 1 "--positive 1: the model \(ref.txt\) was trained with positive default" -- \
  --model ref.txt --data bin.svm --features 5 --bias --scale 0.5 --positive 1
refuse "loss" 1 "--loss squared: the model \(bin.txt\) has loss logistic" -- \
  --model bin.txt --data bin.svm --loss squared
refuse "classes" 1 "--classes 4: the model \(multi.txt\) has classes 3" -- \
  --model multi.txt --data multi.svm --classes 4
awk '{ $1 = ($1 == 2 ? 3 : $1); print }' multi.svm >multi4.svm
refuse "labels beyond the classes" 1 "multi4.svm: row [0-9]+: label 3 is outside 0..2" -- \
  --model multi.txt --data multi4.svm --features 4 -q
refuse "export multinomial" 1 "--export-liblinear: a multinomial model has no liblinear equivalent" -- \
  --model multi.txt --export-liblinear x.ll
refuse "export normalize" 1 "--export-liblinear: --normalize" -- \
  --model sq.txt --export-liblinear x.ll --normalize -q
refuse "nothing to do" 2 "nothing to do" -- --model bin.txt
refuse "no model file" 1 "nonexistent.txt" -- --model nonexistent.txt --data bin.svm
# Malformed model files: each error names the file and the line.
head -n 12 multi.txt >short.txt
refuse "truncated weights" 1 "short.txt: [0-9]+ weight lines after 'w', expected features = 4" -- \
  --model short.txt --data multi.svm
sed 's/^format dsaga-model-2$/format dsaga-model-9/' multi.txt >v9.txt
refuse "unknown format" 1 "v9.txt:2: 'format dsaga-model-9': not a model this release reads" -- \
  --model v9.txt --data multi.svm
sed 's/^classes 3$/classes 2/' multi.txt >c2.txt
refuse "classes disagree with the weights" 1 "c2.txt:[0-9]+: 3 weights on the line of feature 0, expected classes = 2" -- \
  --model c2.txt --data multi.svm
sed 's/^features 4$/features 99999999999/' multi.txt >huge.txt
refuse "huge width" 1 "huge.txt: 4 weight lines after 'w', expected features = 99999999999" -- \
  --model huge.txt --data multi.svm
awk '/^w$/ { print; getline; print "0.5 nan 1"; next } { print }' multi.txt >nan.txt
refuse "a NaN weight" 1 "nan.txt:[0-9]+: weight 'nan' is not a finite number" -- \
  --model nan.txt --data multi.svm
head -c 4096 /dev/urandom >noise.txt
refuse "random bytes" 1 "noise.txt" -- --model noise.txt --data multi.svm
# Mangled copies of a valid model (lines dropped or repeated, characters replaced): read or
# refused with the file named, never a crash.
for i in $(seq 1 80); do
  awk -v seed=$((SEED + 100 + i)) 'BEGIN { srand(seed) } {
    r = rand()
    if (r < 0.04) next
    if (r < 0.08) print
    if (r < 0.2) { p = int(rand() * length($0)) + 1; $0 = substr($0, 1, p - 1) substr("x-9.e+ #,0", int(rand() * 10) + 1, 1) substr($0, p + 1) }
    print
  }' multi.txt >mangled.txt
  rc=0
  "$PREDICT" --model mangled.txt --data multi.svm --features 4 -q >/dev/null 2>mangled.err || rc=$?
  [ "$rc" -le 1 ] || fail "mangled model $i: status $rc: $(cat mangled.err)"
  [ "$rc" -eq 0 ] || grep -q "mangled.txt" mangled.err || fail "mangled model $i: $(cat mangled.err)"
done
echo "PASS: predict (seed $SEED)"
