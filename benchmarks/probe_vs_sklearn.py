"""Linear probe speed and accuracy against scikit-learn, measured in one run on the same features.

Both fit the paper's whole regularization path (45 log-spaced weight decays, 1e-6..1e5) on train, score val,
choose, and refit on train+val. Baseline: scikit-learn's LogisticRegression(solver="lbfgs", max_iter=1000,
C=1/wd), one independent fit per value, as peers (ssl-transfer) run it. Ours: transferbench.probe.solver.LinearProbe
(float32, warm starts, L-BFGS, every value certified by its relative duality gap) on CPU or --device cuda.

The baseline runs in a child process whose environment lacks OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (some machines
set them for old OpenBLAS builds; they slow numpy's current one), and that process alone: ours runs here, in the
environment as given. The child reports the BLAS libraries it used (threadpoolctl: internal_api, architecture,
num_threads), and its time is the fitting alone, measured inside it. Threads: each library's default, or --threads N
for both (torch here, BLAS in the child).

The features imitate a CNN's pooled penultimate layer: non-negative (post-ReLU), correlated through a shared
low-rank mixing, class structure of varying strength. The objective compared is J/n of the probe's convention
(summed cross-entropy + wd/2 ||W||^2, bias unpenalized), evaluated in float64 for both solutions, at every value.

Last line: `speedup_vs_sklearn=<ratio> objective_gap=<max relative gap, ours minus sklearn> certified=<m>/<values>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # removed from the baseline's environment


def make_features(n: int, d: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rank = min(64, d)
    mixing = rng.normal(size=(rank, d)) / np.sqrt(rank)
    centers = rng.normal(size=(k, rank)) * rng.uniform(0.5, 1.5, size=(k, 1))
    y = rng.integers(0, k, n)
    latent = centers[y] + 1.5 * rng.normal(size=(n, rank))
    X = np.maximum(0, latent @ mixing + 0.5 * rng.normal(size=(n, d)))
    return X.astype(np.float32), y


def objective(coef, intercept, X, y, wd):
    """J / n in float64 for weights (d, K) and bias (K,)."""
    z = X.astype(np.float64) @ coef + intercept
    z -= z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return (-log_p[np.arange(len(y)), y].sum() + wd / 2 * (coef ** 2).sum()) / len(y)


def data(args):
    X, y = make_features(args.n, args.d, args.k)
    n_val = args.n // 5
    return X, y, (X[n_val:], y[n_val:]), (X[:n_val], y[:n_val]), np.logspace(-6, 5, args.grid)


def run_sklearn(grid, train, val):
    from sklearn.linear_model import LogisticRegression

    curve, objectives = [], []
    for wd in grid:
        model = LogisticRegression(C=1 / wd, solver="lbfgs", max_iter=1000).fit(*train)
        curve.append(model.score(*val))
        objectives.append(objective(model.coef_.T, model.intercept_, *train, wd))
    best = max(curve)
    chosen = max(wd for wd, v in zip(grid, curve) if v == best)  # ties to stronger L2, as ours
    refit = LogisticRegression(C=1 / chosen, solver="lbfgs", max_iter=1000).fit(
        np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    return curve, objectives, chosen, refit


def sklearn_child(args) -> None:
    """The baseline, in the child process: fit, then save results, time and BLAS libraries to args.sklearn_child."""
    import sklearn.linear_model  # noqa: F401  (loads numpy's and scipy's BLAS before the limit)
    from threadpoolctl import threadpool_info, threadpool_limits

    _, _, train, val, grid = data(args)
    with threadpool_limits(args.threads or None, user_api="blas"):
        start = time.perf_counter()
        curve, objectives, chosen, refit = run_sklearn(grid, train, val)
        elapsed = time.perf_counter() - start
        blas = [{key: info.get(key) for key in ("internal_api", "architecture", "num_threads", "version", "filepath")}
                for info in threadpool_info() if info.get("user_api") == "blas"]
    np.savez(args.sklearn_child, curve=curve, objectives=objectives, chosen=chosen, coef=refit.coef_.T,
             intercept=refit.intercept_, time=elapsed, blas=json.dumps(blas),
             environment=json.dumps({k: os.environ.get(k) for k in BLAS_VARIABLES}))


def sklearn_in_child(args) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sklearn.npz"
        command = [sys.executable, __file__, "--n", str(args.n), "--d", str(args.d), "--k", str(args.k), "--grid",
                   str(args.grid), "--threads", str(args.threads), "--sklearn-child", str(out)]
        subprocess.run(command, env=environment, check=True)
        with np.load(out) as saved:
            return {key: saved[key] for key in saved.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="train + val examples (val: 20%%)")
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--grid", type=int, default=45)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads here and BLAS threads in the baseline's process "
                             "(0: each library's default)")
    parser.add_argument("--sklearn-child", help=argparse.SUPPRESS)  # internal: run the baseline, save it here
    args = parser.parse_args()
    if args.sklearn_child:
        sklearn_child(args)
        return

    import torch

    from transferbench.probe.solver import LinearProbe

    if args.threads:
        torch.set_num_threads(args.threads)
    X, y, train, val, grid = data(args)
    print(f"features n={args.n} (val {len(val[1])}) d={args.d} K={args.k}; grid {args.grid} values; "
          f"device {args.device}; torch threads {torch.get_num_threads()}; this process's "
          + ", ".join(f"{k}={os.environ.get(k)}" for k in BLAS_VARIABLES), flush=True)

    start = time.perf_counter()
    probe = LinearProbe(grid, device=args.device)
    path = probe.fit_path(train, val, num_classes=args.k)
    probe.fit((X, y), path.chosen_weight_decay, num_classes=args.k)
    if args.device == "cuda":
        torch.cuda.synchronize()
    ours_time = time.perf_counter() - start
    certified = sum(path.certified) + probe.certified_
    print(f"ours: {ours_time:.1f}s, {sum(path.iterations)} path iterations (+{probe.n_iter_} refit), "
          f"chose wd={path.chosen_weight_decay:.3g}; relative duality gap <= {probe.tol:g} at "
          f"{sum(path.certified)}/{len(path.certified)} values (largest {max(path.certificate):.2e}), "
          f"refit {probe.certificate_:.2e} (tol {probe.refit_tol:g})", flush=True)

    sk = sklearn_in_child(args)
    sklearn_time = float(sk["time"])
    print(f"sklearn (child process, {', '.join(f'{k}={v}' for k, v in json.loads(str(sk['environment'])).items())}):"
          f" {sklearn_time:.1f}s, chose wd={float(sk['chosen']):.3g}", flush=True)
    for lib in json.loads(str(sk["blas"])):
        print(f"sklearn BLAS: internal_api={lib['internal_api']} architecture={lib['architecture']} "
              f"num_threads={lib['num_threads']} version={lib['version']} ({Path(lib['filepath']).name})")

    gaps = []
    print(f"{'wd':>10} {'ours val':>9} {'sk val':>9} {'ours J/n':>12} {'sk J/n':>12} {'rel gap':>9} {'iter':>5} "
          f"{'certificate':>11}")
    for wd, ours_val, ours_obj, its, cert, sk_val, sk_obj in zip(
            path.weight_decays, path.val_metric, path.objective, path.iterations, path.certificate,
            reversed(sk["curve"]), reversed(sk["objectives"])):
        gaps.append((ours_obj - sk_obj) / abs(sk_obj))
        print(f"{wd:10.3g} {ours_val:9.4f} {sk_val:9.4f} {ours_obj:12.6g} {sk_obj:12.6g} {gaps[-1]:9.2e} {its:5d} "
              f"{cert:11.2e}")
    sk_chosen = float(sk["chosen"])
    if path.chosen_weight_decay == sk_chosen:
        refit_ours = objective(probe.coef_.cpu().numpy(), probe.intercept_.cpu().numpy(), X, y, sk_chosen)
        refit_sk = objective(sk["coef"], sk["intercept"], X, y, sk_chosen)
        gaps.append((refit_ours - refit_sk) / abs(refit_sk))
        print(f"refit at wd={sk_chosen:.3g}: ours J/n {refit_ours:.8g}, sklearn {refit_sk:.8g}, gap {gaps[-1]:.2e}")
    print(f"speedup_vs_sklearn={sklearn_time / ours_time:.2f} objective_gap={max(gaps):.2e} "
          f"certified={certified}/{len(path.certified) + 1}")


if __name__ == "__main__":
    main()
