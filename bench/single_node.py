#!/usr/bin/python3
"""Single-node references for the convergence benchmark (issue 4, ALGORITHM.md section 5):
scikit-learn's SAGA and liblinear's primal logistic regression on exactly dsaga's objective.

Run with Debian's python (/usr/bin/python3: python3-sklearn, python3-numpy); liblinear is
Debian's liblinear-tools (`liblinear-train`).

Data and objective, as dsaga's DataSpec in bench/convergence/convergence.cpp builds them:
Fashion-MNIST train (Debian dataset-fashion-mnist), pixels / 255, each row scaled to unit L2
norm, then a constant 1 appended (d = 785; the bias is an ordinary, regularised feature, so
fit_intercept=False / -B -1); --limit keeps the first rows as the tool's --limit does.
  B1: y = +1 for classes {0, 2, 4, 6}, else -1, binary logistic.
  B2: 10-class multinomial logistic (softmax over all 10 classes, W is 10 x 785).
  B1r: B1 on raw pixels / 255 (rows not normalised, the constant 1 appended).
  F(w) = mean_i loss_i + lambda/2 ||w||^2, lambda = 1/N.
scikit-learn minimises C sum_i loss_i + 1/2 ||w||^2 and liblinear -s 0 the same; with
C = 1/(N lambda) that is (1/lambda) F(w): the same minimiser. F is recomputed here in numpy
(float64) from the returned weights, never taken from the solvers.

F* comes from the caller (--f-star): bench/convergence.sh passes the value the benchmark tool
computed with dsaga's reference solver (OUT/<problem>[-limit<n>]-fstar.txt), so every row of the
benchmark is measured against the same F*.

scikit-learn SAGA: LogisticRegression(solver="saga", tol=0, max_iter=e) is refitted from scratch
for each epoch count e (same random_state: sklearn's sag_fast draws its samples from one seed,
so the fits should share a sampling sequence; not relied on), and timed; e doubles from 1 until the threshold is met (or --max-epochs / the time
budget), then a bisection finds the first e at or below 1e-3 and 1e-6. The bisection assumes
(F - F*) / F* falls with e, which holds for SAGA up to small noise; every evaluated e is in the
CSV. Seconds are the wall time of that fit (setup and input validation included).

liblinear -s 0 (trust-region Newton): `liblinear-train -s 0 -c C -B -1 -e eps` for eps = 1e-1,
1e-2, ...; each run timed. Its wall time includes reading the LIBSVM text file, which dominates
for large eps, so a run with eps = 1e6 (stops at w0 after one function and gradient evaluation)
measures that overhead and "solve s" = total - overhead is reported too. Newton iterations are
counted from liblinear's "iter" lines. B2: liblinear's multiclass -s 0 is one-vs-rest (ten
independent binary problems), a different objective from the multinomial one, so it is skipped.

Output on stdout: a Markdown table fragment, then CSV lines (header "csv,...") one per method.
With --out DIR, every evaluated point goes to DIR/<tag>-sklearn-saga.csv and
DIR/<tag>-liblinear.csv (tag = problem, plus -limit<n>).
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
THRESHOLDS = (1e-3, 1e-6)
LIBLINEAR = "liblinear-train"


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(problem, limit):
    """X (N x 785 float64, C-contiguous), y (B1: +-1 floats; B2: class indices 0..9)."""
    X = read_idx(f"{DATA_DIR}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = read_idx(f"{DATA_DIR}/train-labels-idx1-ubyte.gz", 8)
    if limit:
        X, labels = X[:limit], labels[:limit]
    X = X.astype(np.float64) / 255.0
    if problem in ("B1", "B2"):  # B1r: raw pixels / 255, rows not normalised
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        # dsaga leaves an all-zero row as it is; Fashion-MNIST has none, but do not divide by 0.
        X /= np.where(norms > 0, norms, 1.0)
    X = np.ascontiguousarray(np.hstack([X, np.ones((X.shape[0], 1))]))
    if problem in ("B1", "B1r"):
        y = np.where(np.isin(labels, [0, 2, 4, 6]), 1.0, -1.0)
    else:
        y = labels.astype(np.int64)
    return X, y


def objective(problem, X, y, lam, W):
    """F(W) in float64. B1: W has d entries; B2: W is C x d (row c = class c)."""
    if problem in ("B1", "B1r"):
        z = X @ W
        loss = np.logaddexp(0.0, -y * z)
    else:
        Z = X @ W.T
        m = Z.max(axis=1)
        loss = m + np.log(np.exp(Z - m[:, None]).sum(axis=1)) - Z[np.arange(len(y)), y]
    return float(loss.mean() + 0.5 * lam * np.sum(W * W))


def rel(F, f_star):
    return (F - f_star) / f_star


# ---------------------------------------------------------------- scikit-learn SAGA


def sklearn_saga(problem, X, y, lam, f_star, max_epochs, budget, log):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    warnings.simplefilter("ignore", ConvergenceWarning)
    N = X.shape[0]
    C = 1.0 / (N * lam)
    points = {}  # epochs -> (F, rel, seconds)
    start = time.perf_counter()

    def fit(e):
        if e not in points:
            kw = {"multi_class": "multinomial"} if problem == "B2" else {}
            model = LogisticRegression(solver="saga", penalty="l2", C=C, fit_intercept=False,
                                       tol=0.0, max_iter=e, random_state=0, **kw)
            t0 = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - t0
            if problem in ("B1", "B1r"):
                # classes_ = [-1, 1]: coef_ is the weight of the +1 class, as dsaga's w.
                assert list(model.classes_) == [-1.0, 1.0]
                W = model.coef_.ravel()
            else:
                assert list(model.classes_) == list(range(10))
                W = model.coef_
            F = objective(problem, X, y, lam, W)
            points[e] = (F, rel(F, f_star), seconds)
            log(f"sklearn saga: {e:4d} epochs  F = {F:.17g}  rel = {rel(F, f_star):.3e}  "
                f"{seconds:.2f} s (n_iter_ = {int(np.max(model.n_iter_))})")
        return points[e][1]

    def over_budget():
        return time.perf_counter() - start > budget

    # Exponential search over this schedule (fits are cached, so the 1e-6 search reuses the
    # 1e-3 one), then a bisection between the last failing and the first passing count.
    schedule = sorted({min(2**k, max_epochs) for k in range(32) if 2**(k - 1) < max_epochs})
    found = {}
    for tol in THRESHOLDS:
        for e in schedule:
            if any(p[1] <= tol for p in points.values()) or over_budget():
                break
            fit(e)
        hits = sorted(k for k in points if points[k][1] <= tol)
        if not hits:
            found[tol] = None
            continue
        hi = hits[0]
        lo = max([k for k in points if k < hi and points[k][1] > tol], default=0)
        while hi - lo > 1 and not over_budget():
            mid = (lo + hi) // 2
            if fit(mid) <= tol:
                hi = mid
            else:
                lo = mid
        # Not the first epoch count if the budget cut the bisection short: the table says so.
        found[tol] = (hi, points[hi][2], hi - lo == 1)
    best = min(points.items(), key=lambda kv: kv[1][1]) if points else None
    return found, points, best


# ---------------------------------------------------------------- liblinear


def write_libsvm(path, X, y):
    """LIBSVM text, 1-based indices, zeros omitted, 17 significant digits (exact doubles)."""
    with open(path, "w") as f:
        for i in range(X.shape[0]):
            nz = np.flatnonzero(X[i])
            f.write("%+d " % int(y[i]))
            f.write(" ".join("%d:%.17g" % (j + 1, X[i, j]) for j in nz))
            f.write("\n")


def read_model(path, d):
    with open(path) as f:
        lines = f.read().split("\n")
    header = {}
    k = 0
    while lines[k] != "w":
        key, _, value = lines[k].partition(" ")
        header[key] = value
        k += 1
    w = np.array([float(v) for v in lines[k + 1:k + 1 + d]])
    if header.get("nr_feature") != str(d) or float(header.get("bias", "-1")) >= 0:
        raise RuntimeError(f"{path}: unexpected model header {header}")
    # Two classes: w scores labels[0]; dsaga's w scores +1.
    first = int(header["label"].split()[0])
    return w if first == 1 else -w


def run_liblinear(data, model, C, eps):
    t0 = time.perf_counter()
    out = subprocess.run([LIBLINEAR, "-s", "0", "-c", repr(C), "-B", "-1", "-e", repr(eps),
                          data, model], check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t0
    iters = len(re.findall(r"^iter\s", out, flags=re.M))
    cg = sum(int(c) for c in re.findall(r"CG\s+(\d+)", out))
    return seconds, iters, cg


def liblinear(X, y, lam, f_star, min_eps, log):
    N, d = X.shape
    C = 1.0 / (N * lam)
    results = []  # (eps, iterations, cg, F, rel, seconds)
    with tempfile.TemporaryDirectory(prefix="dsaga-liblinear-") as tmp:
        data, model = os.path.join(tmp, "b1.svm"), os.path.join(tmp, "model")
        t0 = time.perf_counter()
        write_libsvm(data, X, y)
        log(f"liblinear: wrote {os.path.getsize(data) / 1e6:.0f} MB LIBSVM in "
            f"{time.perf_counter() - t0:.1f} s")
        # The fixed cost of a run (read the text file, one f and gradient at w0, write the
        # model): eps = 1e6 stops at w0. The minimum of two runs, the file being in cache.
        overhead = min(run_liblinear(data, model, C, 1e6)[0] for _ in range(2))
        log(f"liblinear: read + setup overhead {overhead:.2f} s")
        eps = 1e-1
        while eps >= min_eps * 0.99:
            seconds, iters, cg = run_liblinear(data, model, C, eps)
            F = objective("B1", X, y, lam, read_model(model, d))
            results.append((eps, iters, cg, F, rel(F, f_star), seconds))
            log(f"liblinear: eps {eps:.0e}  {iters} iterations ({cg} CG)  F = {F:.17g}  "
                f"rel = {rel(F, f_star):.3e}  {seconds:.2f} s")
            if rel(F, f_star) <= THRESHOLDS[-1] and eps < 1e-3 and len(results) >= 2 and \
                    results[-2][4] <= THRESHOLDS[-1]:
                break  # two runs in a row at 1e-6: smaller eps only adds time
            eps /= 10
    found = {}
    for tol in THRESHOLDS:
        hit = next((r for r in results if r[4] <= tol), None)
        found[tol] = hit
    return found, results, overhead


# ---------------------------------------------------------------- output


def fmt_s(seconds):
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_rel(x):
    return f"{x:.1e}" if x > 0 else f"{x:.1e} (below F*)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", choices=["B1", "B2", "B1r"], required=True)
    ap.add_argument("--f-star", type=float, required=True,
                    help="F* (from dsaga's reference solver, OUT/<problem>-fstar.txt)")
    ap.add_argument("--limit", type=int, default=0, help="first rows only (smoke runs)")
    ap.add_argument("--methods", default="sklearn,liblinear")
    ap.add_argument("--max-epochs", type=int, default=300, help="scikit-learn epoch cap")
    ap.add_argument("--budget", type=float, default=900,
                    help="seconds of scikit-learn fitting before the search stops")
    ap.add_argument("--min-eps", type=float, default=1e-8, help="smallest liblinear -e")
    ap.add_argument("--out", help="directory for the per-point CSVs")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = ap.parse_args()
    if not (a.f_star > 0 and np.isfinite(a.f_star)):
        ap.error(f"--f-star {a.f_star}: must be a positive finite number")

    def log(msg):
        if not a.quiet:
            print(msg, file=sys.stderr, flush=True)

    if a.out:
        os.makedirs(a.out, exist_ok=True)
    X, y = load(a.problem, a.limit)
    N, d = X.shape
    lam = 1.0 / N
    tag = a.problem + (f"-limit{a.limit}" if a.limit else "")
    methods = a.methods.split(",")
    import sklearn

    rows, csv = [], []
    lowest = np.inf
    print(f"# {tag} single-node: N = {N}, d = {d}, C = {1 if a.problem in ('B1', 'B1r') else 10}, "
          f"lambda = {lam:.3g}, F* = {a.f_star:.17g} (scikit-learn {sklearn.__version__}, "
          f"{os.cpu_count()} cores)")
    csv.append("csv,problem,method,unit,to_1e-3,seconds_1e-3,to_1e-6,seconds_1e-6,"
               "best_rel,best_at")
    if "sklearn" in methods:
        found, points, best = sklearn_saga(a.problem, X, y, lam, a.f_star, a.max_epochs,
                                           a.budget, log)
        cells, cv = [], []
        for tol in THRESHOLDS:
            hit = found[tol]
            if hit is None:
                cells.append("-")
                cv += ["", ""]
            else:
                e, s, exact = hit
                cells.append(f"{e} epochs, {fmt_s(s)}" + ("" if exact else " (bisection cut)"))
                cv += [str(e), f"{s:.3f}"]
        lowest = min(lowest, best[1][1])
        # Fits are timed once each on a shared machine: the median per-epoch cost over all fits
        # tells noise from trend.
        per_epoch = float(np.median([p[2] / e for e, p in points.items()]))
        rows.append(f"| scikit-learn SAGA (1 node, median {per_epoch:.2f} s/epoch) | {cells[0]} | "
                    f"{cells[1]} | "
                    f"{fmt_rel(best[1][1])} @ {best[0]} epochs |")
        csv.append(f"csv,{tag},sklearn-saga,epochs,{','.join(cv)},{best[1][1]:.3e},{best[0]}")
        if a.out:
            with open(os.path.join(a.out, f"{tag}-sklearn-saga.csv"), "w") as f:
                f.write("epochs,objective,suboptimality,seconds\n")
                for e in sorted(points):
                    F, r, s = points[e]
                    f.write(f"{e},{F:.17g},{r:.17g},{s:.4f}\n")
    if "liblinear" in methods and a.problem == "B2":
        rows.append("| liblinear | skipped: its multiclass -s 0 is one-vs-rest (10 binary "
                    "problems), not the multinomial objective | | |")
        csv.append(f"csv,{tag},liblinear,skipped-one-vs-rest,,,,,,")
    elif "liblinear" in methods:
        found, results, overhead = liblinear(X, y, lam, a.f_star, a.min_eps, log)
        cells, cv = [], []
        for tol in THRESHOLDS:
            hit = found[tol]
            if hit is None:
                cells.append("-")
                cv += ["", ""]
            else:
                eps, iters, cg, F, r, s = hit
                cells.append(f"{iters} Newton iterations ({cg} CG, -e {eps:g}), {fmt_s(s)} "
                             f"({fmt_s(max(s - overhead, 0))} solving)")
                cv += [str(iters), f"{s:.3f}"]
        best = min(results, key=lambda r: r[4])
        lowest = min(lowest, best[4])
        rows.append(f"| liblinear -s 0 (1 node, trust-region Newton) | {cells[0]} | {cells[1]} "
                    f"| {fmt_rel(best[4])} @ -e {best[0]:g} |")
        csv.append(f"csv,{tag},liblinear,newton-iterations,{','.join(cv)},{best[4]:.3e},"
                   f"eps{best[0]:g}")
        if a.out:
            with open(os.path.join(a.out, f"{tag}-liblinear.csv"), "w") as f:
                f.write("eps,iterations,cg_iterations,objective,suboptimality,seconds,"
                        "overhead_seconds\n")
                for eps, iters, cg, F, r, s in results:
                    f.write(f"{eps:g},{iters},{cg},{F:.17g},{r:.17g},{s:.4f},{overhead:.4f}\n")
    if lowest < -1e-9:
        # A solver went below F* by more than rounding: F* (or the data) does not match.
        print(f"**Warning:** a single-node solver reached (F-F*)/F* = {lowest:.2e} < 0: F* is "
              f"not the minimum of this objective.")
        log(f"warning: (F-F*)/F* = {lowest:.2e} < 0")
    print("| method | to 1e-3 | to 1e-6 | lowest (F-F*)/F* measured |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    print("\n".join(csv))


if __name__ == "__main__":
    main()
