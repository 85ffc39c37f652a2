#!/usr/bin/python3
"""Writes the small data sets of bench/daemons_small.sh into OUT (a directory per set, a file
per agent, all.* for the union): scikit-learn's bundled breast cancer (569 x 30, raw features
from 1e-3 to 4e3; binary; two agents per class, each holding one class) and wine (178 x 13, raw,
3 classes, one per agent), digits (1797 x 64, 10 classes, one per agent) as they are (pixels
0-16) and with every row scaled by 10^U(-2, 2), and a sparse wide set (6 agents of 400 rows on d up to 2^18, each file as wide
as its own highest index: 2^18, 2^17, 2^16, 2^15 less up to 1000; a shared Zipf head and a
region of its own; labels all +1 on two agents, all -1 on one, from a linear rule on three).
Deterministic (seed 0). Usage: small_data.py OUT"""
import csv, gzip, os, sys
import numpy as np

D = os.path.join(os.path.dirname(__import__("sklearn").__file__), "datasets", "data")
rng = np.random.default_rng(0)


def load_csv(name):
    rows = list(csv.reader(open(os.path.join(D, name))))[1:]
    a = np.array([[float(x) for x in r] for r in rows])
    return a[:, :-1], a[:, -1].astype(int)


def write_libsvm(path, X, y):
    with open(path, "w") as f:
        for xi, yi in zip(X, y):
            f.write(str(yi) + " " + " ".join(f"{j + 1}:{v:.17g}" for j, v in enumerate(xi) if v != 0) + "\n")


def write_csv(path, X, y):
    with open(path, "w") as f:
        for xi, yi in zip(X, y):
            f.write(",".join([str(yi)] + [f"{v:.17g}" for v in xi]) + "\n")


def save(out, name, X, y, fmt, shards):
    os.makedirs(os.path.join(out, name), exist_ok=True)
    write = write_libsvm if fmt == "libsvm" else write_csv
    write(os.path.join(out, name, f"all.{fmt}"), X, y)
    for k, idx in enumerate(shards):
        write(os.path.join(out, name, f"agent{k}.{fmt}"), X[idx], y[idx])


def main(out):
    X, y = load_csv("breast_cancer.csv")
    y = np.where(y == 1, 1, -1)
    neg, pos = np.where(y == -1)[0], np.where(y == 1)[0]
    save(out, "cancer", X, y, "csv", [neg[: len(neg) // 2], neg[len(neg) // 2:], pos[: len(pos) // 2], pos[len(pos) // 2:]])
    X, y = load_csv("wine_data.csv")
    save(out, "wine", X, y, "csv", [np.where(y == c)[0] for c in sorted(set(y))])
    a = np.loadtxt(gzip.open(os.path.join(D, "digits.csv.gz")), delimiter=",")
    X, y = a[:, :-1], a[:, -1].astype(int)
    save(out, "digits", X, y, "libsvm", [np.where(y == c)[0] for c in sorted(set(y))])
    X = X * (10 ** rng.uniform(-2, 2, size=(len(X), 1)))
    save(out, "digits-rows", X, y, "libsvm", [np.where(y == c)[0] for c in sorted(set(y))])
    d, n = 2 ** 18, 400
    w = rng.normal(size=d)
    os.makedirs(os.path.join(out, "sparse"), exist_ok=True)
    every = []
    for k in range(6):
        width = d // (2 ** (k % 4)) - rng.integers(0, 1000)
        lines = []
        for _ in range(n):
            nnz = rng.integers(5, 60)
            cols = np.unique(np.concatenate([rng.zipf(1.3, size=nnz) % width,
                                             rng.integers(width // 2, width, size=nnz // 2)]))
            vals = rng.exponential(1.0, size=len(cols)) * (10 ** rng.uniform(-1, 1))
            label = 1 if k < 2 else (-1 if k < 3 else (1 if w[cols] @ vals > 0 else -1))
            lines.append(str(label) + " " + " ".join(f"{c + 1}:{v:.6g}" for c, v in zip(cols, vals)))
        open(os.path.join(out, "sparse", f"agent{k}.libsvm"), "w").write("\n".join(lines) + "\n")
        every += lines
    open(os.path.join(out, "sparse", "all.libsvm"), "w").write("\n".join(every) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
