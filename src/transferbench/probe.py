"""The linear probe: L2-regularized multinomial logistic regression on frozen features, fitted by L-BFGS.

Convention. For a grid value `wd` (the paper's "weight decay", 45 log-spaced values from 1e-6 to 1e5) the
objective is the *summed* cross-entropy plus an L2 penalty on the weights (the bias is not penalized):

    J(W, b) = sum_i CE(W x_i + b, y_i) + (wd / 2) * ||W||^2

which is scikit-learn's LogisticRegression(C = 1 / wd). The solver minimizes J / n (same minimizer, better
scaled) in float32 with torch's L-BFGS and strong-Wolfe line search, on CPU or GPU alike. The path runs from the
strongest regularization to the weakest, each fit warm-started from the previous one. Selection picks the best
validation metric; ties go to the stronger regularization. The chosen value is refit on train + val.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import metrics
from .inference import pick_device

log = logging.getLogger(__name__)


@dataclass
class PathResult:
    weight_decays: list
    val_metric: list
    objective: list  # J / n at the solution, per grid value
    iterations: list
    fit_time_s: list
    chosen_weight_decay: float = float("nan")
    curve_time_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


class LinearProbe:
    """Multinomial logistic regression over a path of L2 strengths (see the module docstring for conventions).

    Parameters: weight_decays (the grid; any order), max_iter (L-BFGS iterations per fit), tol (gradient
    tolerance on J / n, sup norm), device ('auto' | 'cpu' | 'cuda').
    """

    def __init__(self, weight_decays, max_iter: int = 1000, tol: float = 1e-7, device: str = "auto"):
        self.weight_decays = sorted(float(w) for w in weight_decays)
        self.max_iter, self.tol = max_iter, tol
        self.device = pick_device(device)
        self.coef_: torch.Tensor | None = None  # (d, K)
        self.intercept_: torch.Tensor | None = None  # (K,)

    def _tensors(self, features, labels):
        X = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.device)
        return X, y

    def _fit(self, X, y, num_classes: int, weight_decay: float, init=None) -> tuple[float, int]:
        """Minimize J / n from `init` (or zeros); return (J / n, iterations)."""
        n, d = X.shape
        if init is None:
            W = torch.zeros(d, num_classes, device=self.device)
            b = torch.zeros(num_classes, device=self.device)
        else:
            W, b = (t.clone() for t in init)
        W.requires_grad_(True)
        b.requires_grad_(True)
        optimizer = torch.optim.LBFGS([W, b], lr=1, max_iter=self.max_iter, tolerance_grad=self.tol,
                                      tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
        scale = weight_decay / (2 * n)

        def objective_fn():
            return torch.nn.functional.cross_entropy(X @ W + b, y, reduction="mean") + scale * W.pow(2).sum()

        def closure():
            optimizer.zero_grad()
            loss = objective_fn()
            loss.backward()
            return loss

        optimizer.step(closure)
        iterations = optimizer.state[optimizer._params[0]]["n_iter"]
        with torch.no_grad():
            objective = float(objective_fn())
        self.coef_, self.intercept_ = W.detach(), b.detach()
        return objective, iterations

    def decision_function(self, features) -> np.ndarray:
        X = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        return (X @ self.coef_ + self.intercept_).cpu().numpy()

    def fit_path(self, train, val, metric: str = "top1", num_classes: int | None = None) -> PathResult:
        """Fit every grid value on `train` = (features, labels), score on `val`; choose (ties: stronger L2)."""
        num_classes = num_classes or int(max(train[1].max(), val[1].max())) + 1
        _check(train, "train", num_classes)
        _check(val, "val", num_classes)
        missing = sorted(set(range(num_classes)) - set(np.unique(train[1]).tolist()))
        if missing:
            raise ValueError(f"classes {missing[:10]} have no training example; every class needs one")
        X, y = self._tensors(*train)
        result = PathResult([], [], [], [], [])
        init, start = None, time.perf_counter()
        for weight_decay in reversed(self.weight_decays):  # strongest first: warm starts move toward weaker L2
            t = time.perf_counter()
            objective, iterations = self._fit(X, y, num_classes, weight_decay, init)
            init = (self.coef_, self.intercept_)
            value = metrics.score(metric, val[1], self.decision_function(val[0]))
            for key, v in zip(("weight_decays", "val_metric", "objective", "iterations", "fit_time_s"),
                              (weight_decay, value, objective, iterations, time.perf_counter() - t)):
                getattr(result, key).append(v)
            log.info("wd %.3g: val %s %.4f, objective %.6g, %d iterations", weight_decay, metric, value, objective,
                     iterations)
        result.curve_time_s = time.perf_counter() - start
        # Ties to the stronger regularization: the path is ordered strongest first, argmax takes the first maximum.
        result.chosen_weight_decay = result.weight_decays[int(np.argmax(result.val_metric))]
        return result

    def fit(self, train, weight_decay: float, num_classes: int | None = None) -> "LinearProbe":
        """Fit one value on `train` = (features, labels), from zeros."""
        num_classes = num_classes or int(train[1].max()) + 1
        _check(train, "train", num_classes)
        X, y = self._tensors(*train)
        self.objective_, self.n_iter_ = self._fit(X, y, num_classes, weight_decay)
        return self


def _check(data, name: str, num_classes: int) -> None:
    features, labels = data
    if not np.isfinite(features).all():
        bad = np.argwhere(~np.isfinite(features))[0]
        raise ValueError(f"{name} features contain NaN or inf (first at row {bad[0]}, column {bad[1]})")
    if len(features) != len(labels):
        raise ValueError(f"{name}: {len(features)} feature rows but {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{name}: label {bad} is out of range; labels must be class indices 0..{num_classes - 1}")
