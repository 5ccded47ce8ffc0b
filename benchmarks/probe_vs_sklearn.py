"""Linear probe speed and accuracy against scikit-learn, measured in one run on the same features.

Both fit the paper's whole regularization path (45 log-spaced weight decays, 1e-6..1e5) on train, score val,
choose, and refit on train+val. Baseline: scikit-learn's LogisticRegression(solver="lbfgs", max_iter=1000,
C=1/wd), one independent fit per value, as peers (ssl-transfer) run it. Ours: transferbench.probe.LinearProbe
(float32, warm starts, torch L-BFGS) on CPU or --device cuda.

The features imitate a CNN's pooled penultimate layer: non-negative (post-ReLU), correlated through a shared
low-rank mixing, class structure of varying strength. The objective compared is J/n of the probe's convention
(summed cross-entropy + wd/2 ||W||^2, bias unpenalized), evaluated in float64 for both solutions.

Last line: `speedup_vs_sklearn=<ratio> objective_gap=<max relative gap, ours minus sklearn>`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from transferbench.probe import LinearProbe


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


def run_sklearn(grid, train, val):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="train + val examples (val: 20%%)")
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--grid", type=int, default=45)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    X, y = make_features(args.n, args.d, args.k)
    n_val = args.n // 5
    train, val = (X[n_val:], y[n_val:]), (X[:n_val], y[:n_val])
    grid = np.logspace(-6, 5, args.grid)
    print(f"features n={args.n} (val {n_val}) d={args.d} K={args.k}; grid {args.grid} values; "
          f"device {args.device}; torch threads {torch.get_num_threads()}", flush=True)

    start = time.perf_counter()
    probe = LinearProbe(grid, device=args.device)
    path = probe.fit_path(train, val, num_classes=args.k)
    probe.fit((X, y), path.chosen_weight_decay, num_classes=args.k)
    if args.device == "cuda":
        torch.cuda.synchronize()
    ours_time = time.perf_counter() - start
    print(f"ours: {ours_time:.1f}s, {sum(path.iterations)} iterations, chose wd={path.chosen_weight_decay:.3g}",
          flush=True)

    start = time.perf_counter()
    curve, sk_objectives, sk_chosen, sk_refit = run_sklearn(grid, train, val)
    sklearn_time = time.perf_counter() - start
    print(f"sklearn: {sklearn_time:.1f}s, chose wd={sk_chosen:.3g}", flush=True)

    gaps = []
    print(f"{'wd':>10} {'ours val':>9} {'sk val':>9} {'ours J/n':>12} {'sk J/n':>12} {'rel gap':>9}")
    for wd, ours_val, ours_obj, sk_val, sk_obj in zip(path.weight_decays, path.val_metric, path.objective,
                                                       reversed(curve), reversed(sk_objectives)):
        gaps.append((ours_obj - sk_obj) / abs(sk_obj))
        print(f"{wd:10.3g} {ours_val:9.4f} {sk_val:9.4f} {ours_obj:12.6g} {sk_obj:12.6g} {gaps[-1]:9.2e}")
    refit_ours = objective(probe.coef_.cpu().numpy(), probe.intercept_.cpu().numpy(), X, y, sk_chosen)
    refit_sk = objective(sk_refit.coef_.T, sk_refit.intercept_, X, y, sk_chosen)
    if path.chosen_weight_decay == sk_chosen:
        gaps.append((refit_ours - refit_sk) / abs(refit_sk))
    print(f"speedup_vs_sklearn={sklearn_time / ours_time:.2f} objective_gap={max(gaps):.2e}")


if __name__ == "__main__":
    main()
