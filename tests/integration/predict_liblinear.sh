#!/usr/bin/env bash
# dsaga-predict --export-liblinear against Debian's liblinear-predict: models trained by
# dsaga-reference on random LIBSVM rows, exported, and applied by both tools to other random
# rows must predict the same label on every row (logistic, with a bias column and a scale
# folded into w), the same probabilities (to liblinear's printed digits) and the same values
# (least squares, to 1e-9 relative to 1 + |value|). Exits 77 (skipped) without liblinear-predict
# (scripts/install-deps.sh installs liblinear-tools).
# Usage: predict_liblinear.sh DSAGA_PREDICT DSAGA_REFERENCE
source "$(dirname "$0")/lib.sh"
command -v liblinear-predict >/dev/null || { echo "SKIP: no liblinear-predict (liblinear-tools)"; exit 77; }
predict_setup "$@"

# gen_data FILE ROWS D KIND SEED: LIBSVM rows, features present with p = 0.7; binary labels
# -1/+1 from a noisy linear rule (so the model is not trivial), real labels likewise.
gen_data() {
  awk -v n="$2" -v d="$3" -v kind="$4" -v seed="$5" 'BEGIN {
    srand(seed)
    for (i = 0; i < n; i++) {
      line = ""; s = 0
      for (k = 1; k <= d; k++) if (rand() < 0.7) {
        v = sprintf("%.4f", rand() * 4 - 2); line = line " " k ":" v; s += v * (k % 3 - 1)
      }
      if (kind == "binary") y = s + 2 * (rand() - 0.5) > 0.3 ? 1 : -1
      else y = sprintf("%.4f", s + rand() - 0.5)
      print y line
    }
  }' >"$1"
}

# same_labels A B: the two prediction files agree line by line (labels compared as text).
same_labels() {
  cmp -s <(awk '{ print $1 }' "$1") <(awk '{ print $1 }' "$2") ||
    fail "$3: labels differ: $(diff <(awk '{ print $1 }' "$1") <(awk '{ print $1 }' "$2") | head -5)"
}

# --- binary logistic, bias column, --scale 0.5 -------------------------------------------------
gen_data train.svm 400 8 binary $((SEED + 1))
gen_data test.svm 300 8 binary $((SEED + 2))
opts=(--features 8 --bias --scale 0.5)
"$REFERENCE" --data train.svm "${opts[@]}" --lambda 0.01 --model lr.txt -q >/dev/null ||
  fail "dsaga-reference (logistic) failed"
"$PREDICT" --model lr.txt --data test.svm "${opts[@]}" --export-liblinear lr.ll \
  --output dsaga.out -q >dsaga.log || fail "dsaga-predict (logistic) failed"
grep -q '^solver_type L2R_LR$' lr.ll && grep -q '^label 1 -1$' lr.ll && grep -q '^nr_feature 8$' lr.ll &&
  grep -q '^bias 1$' lr.ll || fail "exported header: $(head -6 lr.ll)"
liblinear-predict test.svm lr.ll ll.out >ll.log || fail "liblinear-predict failed: $(cat ll.log)"
same_labels dsaga.out ll.out "logistic"
# Both count the same correct rows (labels are -1/+1, so liblinear's count is comparable).
ours=$(sed -n 's/^accuracy .* (\([0-9]*\/[0-9]*\))$/\1/p' dsaga.log)
theirs=$(sed -n 's/^Accuracy = .* (\([0-9]*\/[0-9]*\))$/\1/p' ll.log)
[ -n "$ours" ] && [ "$ours" = "$theirs" ] || fail "accuracy: dsaga $ours, liblinear $theirs"
# Not a degenerate model: both labels predicted.
[ "$(sort -u dsaga.out | wc -l)" -eq 2 ] || fail "the model predicts one label only"
# Probabilities: liblinear prints 6 significant digits.
"$PREDICT" --model lr.txt --data test.svm "${opts[@]}" --output dsagap.out --probabilities -q >/dev/null ||
  fail "dsaga-predict --probabilities failed"
liblinear-predict -b 1 test.svm lr.ll llp.out >/dev/null || fail "liblinear-predict -b 1 failed"
[ "$(head -1 dsagap.out)" = "$(head -1 llp.out)" ] || fail "labels lines: '$(head -1 dsagap.out)' vs '$(head -1 llp.out)'"
same_labels dsagap.out llp.out "logistic with probabilities"
paste -d' ' <(tail -n +2 dsagap.out) <(tail -n +2 llp.out) |
  awk '{ for (c = 2; c <= 3; c++) { d = $c - $(c + 3); if (d * d > 1e-10) { print NR ": " $0; exit 1 } } }' ||
  fail "probabilities differ beyond liblinear's printed digits"

# --- the same model without its bias column: a bias -1 export --------------------------------
"$REFERENCE" --data train.svm --features 8 --lambda 0.01 --model lr0.txt -q >/dev/null ||
  fail "dsaga-reference (logistic, no bias) failed"
"$PREDICT" --model lr0.txt --data test.svm --features 8 --export-liblinear lr0.ll --output dsaga0.out -q \
  >/dev/null || fail "dsaga-predict (no bias) failed"
grep -q '^bias -1$' lr0.ll || fail "no-bias export: $(head -6 lr0.ll)"
liblinear-predict test.svm lr0.ll ll0.out >/dev/null || fail "liblinear-predict (no bias) failed"
same_labels dsaga0.out ll0.out "logistic without bias"

# --- least squares, --scale 2 --------------------------------------------------------------------
gen_data trainr.svm 300 6 real $((SEED + 3))
gen_data testr.svm 200 6 real $((SEED + 4))
"$REFERENCE" --data trainr.svm --features 6 --loss squared --scale 2 --bias --lambda 0.001 --model ls.txt -q \
  >/dev/null || fail "dsaga-reference (squared) failed"
"$PREDICT" --model ls.txt --data testr.svm --features 6 --loss squared --scale 2 --bias \
  --export-liblinear ls.ll --output dsagar.out -q >/dev/null || fail "dsaga-predict (squared) failed"
grep -q '^solver_type L2R_L2LOSS_SVR$' ls.ll || fail "squared export: $(head -6 ls.ll)"
liblinear-predict testr.svm ls.ll llr.out >/dev/null || fail "liblinear-predict (squared) failed"
[ "$(wc -l <dsagar.out)" -eq 200 ] && [ "$(wc -l <llr.out)" -eq 200 ] || fail "squared: row counts"
paste -d' ' dsagar.out llr.out |
  awk '{ d = $1 - $2; s = ($1 < 0 ? -$1 : $1) + 1; if (d * d > 1e-18 * s * s) { print NR ": " $0; exit 1 } }' ||
  fail "squared: predictions differ beyond 1e-9 relative"
echo "PASS: predict_liblinear (seed $SEED)"
