#!/usr/bin/env python3
"""scikit-learn's SAGA epoch on problem B1 (ALGORITHM.md section 5), for bench/local_solver.sh.

Same data and objective as dsaga's B1: Fashion-MNIST train, pixels / 255, rows scaled to unit L2
norm, a constant 1 appended (the bias is a feature: fit_intercept=False), y = +1 for classes
{0, 2, 4, 6}, lambda = 1/N, i.e. LogisticRegression's C = 1 / (N * lambda) = 1.

Time per epoch: fit() with max_iter=1 (one pass of SAGA, tol tiny so it never stops early),
repeated; the minimum and the median are printed. fit() also validates and copies the input
and sets up the solver; the marginal cost of one more epoch, (t(max_iter=3) - t(max_iter=1)) / 2,
is printed too, so the comparison does not charge sklearn for its setup.
Output lines: "sklearn <dtype> <key> <milliseconds>".
"""
import gzip
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_b1(dtype):
    X = read_idx(f"{DIR}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784).astype(np.float64)
    labels = read_idx(f"{DIR}/train-labels-idx1-ubyte.gz", 8)
    X /= 255.0
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X = np.hstack([X, np.ones((X.shape[0], 1))])
    y = np.where(np.isin(labels, [0, 2, 4, 6]), 1.0, -1.0)
    return np.ascontiguousarray(X, dtype=dtype), y


def fit_ms(X, y, epochs):
    model = LogisticRegression(solver="saga", C=1.0, fit_intercept=False, max_iter=epochs,
                               tol=1e-300, random_state=0)
    t0 = time.perf_counter()
    model.fit(X, y)
    return (time.perf_counter() - t0) * 1e3


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    warnings.simplefilter("ignore", ConvergenceWarning)
    for dtype in (np.float64, np.float32):
        X, y = load_b1(dtype)
        name = np.dtype(dtype).name
        one = [fit_ms(X, y, 1) for _ in range(repeats)]
        three = [fit_ms(X, y, 3) for _ in range(max(1, repeats // 2))]
        print(f"sklearn {name} epoch_min_ms {min(one):.3f}")
        print(f"sklearn {name} epoch_median_ms {statistics.median(one):.3f}")
        print(f"sklearn {name} marginal_epoch_ms {(min(three) - min(one)) / 2:.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
