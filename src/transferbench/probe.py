"""The linear probe: L2-regularized logistic regression on frozen features, fitted by L-BFGS.

Convention. For a grid value `wd` (the paper's "weight decay", 45 log-spaced values from 1e-6 to 1e5) the
objective is the *summed* loss plus an L2 penalty on the weights (the bias is not penalized):

    J(W, b) = sum_i loss(W x_i + b, y_i) + (wd / 2) * ||W||^2

which is scikit-learn's LogisticRegression(C = 1 / wd). The loss is the multinomial cross-entropy for
single-label data (labels: class indices, shape (n,)), and for multi-label data (labels: a 0/1 matrix (n, K), as
PASCAL VOC 2007) the sum of K independent binary logistic losses: K binary problems sharing the value of wd.

Solver. J / n (same minimizer, better scaled) is minimized in float32 with torch's L-BFGS and strong-Wolfe line
search, on CPU or GPU alike. The loss and its gradient are computed by hand in blocks of rows, so memory stays
bounded (a (block, K) logit matrix at a time) and no autograd graph is built. The path runs from the strongest
regularization to the weakest, each fit warm-started from the previous solution. Selection picks the best
validation metric; ties go to the stronger regularization. The chosen value is refit on train + val, starting
from the path's solution at that value.

Preconditioning, exact (the objective and its minimizer are unchanged). Penultimate CNN features are non-negative
and strongly correlated, which makes the problem ill-conditioned in the raw coordinates. Because the bias is not
penalized, the features can be centered (x - mu, the bias absorbing W^T mu); because ||W||^2 is invariant under
rotations, they can be expressed in the eigenbasis U of their covariance (W = U W~). In that basis the Hessian of
J / n is close to diagonal, about c * lambda_j + wd / n per direction (lambda_j the variance along it, c the
curvature of the loss: 1/K for the multinomial, 1/4 for binary problems), and L-BFGS runs on W~ scaled by the
inverse square root of that. Directions in which the training features do not vary at all (numerically: variance
below 1e-10 of the largest, e.g. when there are fewer examples than dimensions) get no gradient but the penalty's,
so their optimal weight is zero and they are dropped. `coef_` and `intercept_` are returned in the original
coordinates. The stopping tolerance applies to this preconditioned gradient.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from transferbench import metrics
from transferbench.inference import pick_device

log = logging.getLogger(__name__)

BLOCK_ROWS = 16384  # rows per block of the loss/gradient computation (bounds memory at block x K floats)


@dataclass
class PathResult:
    weight_decays: list  # in path order: strongest regularization first
    val_metric: list
    objective: list  # J / n at the solution, per grid value
    iterations: list
    fit_time_s: list
    chosen_weight_decay: float = float("nan")
    curve_time_s: float = 0.0

    def summary(self) -> dict:
        return dict(self.__dict__)


def is_multilabel(labels) -> bool:
    return np.asarray(labels).ndim == 2


class LinearProbe:
    """Logistic regression over a path of L2 strengths (conventions in the module docstring).

    Parameters: weight_decays (the grid; any order), max_iter (L-BFGS iterations per fit), tol (the path's fits
    stop when the sup norm of the gradient of J / n is below tol; they serve selection only), refit_tol (the same
    for `fit`, which makes the final model: tight), device ('auto' | 'cpu' | 'cuda'), block_rows (rows per block).
    """

    def __init__(self, weight_decays, max_iter: int = 1000, tol: float = 1e-5, refit_tol: float = 1e-7,
                 device: str = "auto", block_rows: int = BLOCK_ROWS):
        self.weight_decays = sorted(float(w) for w in weight_decays)
        self.max_iter, self.tol, self.refit_tol, self.block_rows = max_iter, tol, refit_tol, block_rows
        self.device = pick_device(device)
        self.coef_: torch.Tensor | None = None  # (d, K)
        self.intercept_: torch.Tensor | None = None  # (K,)
        self.chosen_start_: tuple | None = None  # (weight decay, coef, intercept) chosen by fit_path: the refit's start
        self._path_problem: _Centered | None = None  # fit_path's basis, reused by the refit when exact

    def _tensors(self, features, labels):
        X = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        labels = np.asarray(labels)
        y = torch.as_tensor(labels.astype(np.float32 if labels.ndim == 2 else np.int64), device=self.device)
        return X, y

    def _loss_and_grad(self, X, y, W, b, scale: float):
        """J / n and its gradient with respect to (W, b), block by block over the rows."""
        n = X.shape[0]
        loss = torch.zeros((), dtype=torch.float64, device=X.device)
        grad_W, grad_b = torch.zeros_like(W), torch.zeros_like(b)
        for start in range(0, n, self.block_rows):
            Xb, yb = X[start:start + self.block_rows], y[start:start + self.block_rows]
            z = torch.addmm(b, Xb, W)
            if yb.ndim == 2:  # independent binary problems
                loss += torch.nn.functional.binary_cross_entropy_with_logits(z, yb, reduction="sum").double()
                residual = torch.sigmoid(z).sub_(yb)
            else:  # multinomial, in a form that keeps float32 precision when the true class dominates
                # loss_i = log(1 + sum_{k != y} exp(z_k - z_y)) = softplus(s_i): no cancellation of large logits
                target = yb[:, None]
                margins = z.sub_(z.gather(1, target)).scatter_(1, target, float("-inf"))
                per_example = torch.nn.functional.softplus(torch.logsumexp(margins, dim=1))
                loss += per_example.sum().double()
                residual = torch.exp(margins.sub_(per_example[:, None]))  # p_k for k != y, 0 at y
                residual.scatter_(1, target, -residual.sum(1, keepdim=True))  # p_y - 1 = -sum_{k != y} p_k
            grad_W.addmm_(Xb.T, residual)
            grad_b += residual.sum(0)
        loss = loss / n + scale * float(W.pow(2).sum())
        grad_W.div_(n).add_(W, alpha=2 * scale)
        grad_b.div_(n)
        return loss, grad_W, grad_b

    def _fit(self, problem: "_Centered", weight_decay: float, init=None, candidate=None,
             tol: float | None = None) -> tuple[float, int]:
        """Minimize J / n from `init` (or zeros), both (W~, b~) in the problem's basis; return (J / n, iterations).

        `candidate` is an alternative start (the path's predictor step), used when it has the lower objective.
        Stopping: sup |preconditioned grad J/n| <= tol (default self.tol).
        """
        X, y = problem.X, problem.y
        if init is None:
            init, self.data_loss_ = problem.zeros(), None
        scale = weight_decay / (2 * X.shape[0])
        if candidate is not None:
            # J at the warm start needs no pass over the data: its data term is known from the previous fit
            at_init = self.data_loss_ + scale * float(init[0].pow(2).sum())
            if float(self._loss_and_grad(X, y, *candidate, scale)[0]) < at_init:
                init = candidate
        s_W, s_b = problem.preconditioner(weight_decay)
        V, c = init[0] / s_W, init[1] / s_b  # L-BFGS variables: W~ = s_W V, b~ = s_b c
        optimizer = torch.optim.LBFGS([V, c], lr=1, max_iter=self.max_iter, tolerance_grad=tol or self.tol,
                                      tolerance_change=0, history_size=20, line_search_fn="strong_wolfe")
        last = {}

        def closure():
            loss, grad_W, grad_b = self._loss_and_grad(X, y, V * s_W, c * s_b, scale)
            last.update(V=V.clone(), c=c.clone(), loss=float(loss))
            V.grad, c.grad = grad_W.mul_(s_W), grad_b.mul_(s_b)
            return float(loss)

        with torch.no_grad():
            optimizer.step(closure)
            self.solution_ = (V * s_W, c * s_b)
            if torch.equal(V, last["V"]) and torch.equal(c, last["c"]):  # ended where it last evaluated
                objective = last["loss"]
            else:
                objective = float(self._loss_and_grad(X, y, *self.solution_, scale)[0])
        self.data_loss_ = objective - scale * float(self.solution_[0].pow(2).sum())
        state = optimizer.state[optimizer._params[0]]
        self.coef_, self.intercept_ = problem.to_original(*self.solution_)
        return objective, int(state.get("n_iter", 0))

    def decision_function(self, features) -> np.ndarray:
        X = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        return torch.cat([torch.addmm(self.intercept_, X[s:s + self.block_rows], self.coef_)
                          for s in range(0, max(len(X), 1), self.block_rows)]).cpu().numpy()

    def fit_path(self, train, val, metric: str = "top1", num_classes: int | None = None) -> PathResult:
        """Fit every grid value on `train` = (features, labels), score on `val`; choose (ties: stronger L2)."""
        num_classes = num_classes or _num_classes(train[1], val[1])
        _check(train, "train", num_classes)
        _check(val, "val", num_classes)
        if not is_multilabel(train[1]):
            missing = sorted(set(range(num_classes)) - set(np.unique(train[1]).tolist()))
            if missing:
                raise ValueError(f"classes {missing[:10]} have no training example; every class needs one")
        start = time.perf_counter()
        problem = self._path_problem = _Centered(*self._tensors(*train), num_classes, self.block_rows)
        self.chosen_start_ = None
        result = PathResult([], [], [], [], [])
        solution, previous = None, None
        for weight_decay in reversed(self.weight_decays):  # strongest first: warm starts move toward weaker L2
            t = time.perf_counter()
            predicted = None
            if previous is not None:
                # Predictor step of path following: the grid is uniform in log(wd), so continue the last move.
                # At weak L2 the solution drifts along a flat valley, where a plain warm start stalls.
                predicted = tuple(2 * a - b for a, b in zip(solution, previous))
            objective, iterations = self._fit(problem, weight_decay, solution, predicted)
            previous, solution = solution, self.solution_
            value = metrics.score(metric, val[1], self.decision_function(val[0]))
            if not result.val_metric or value > max(result.val_metric):  # the choice so far (ties: stronger L2)
                self.chosen_start_ = (weight_decay, self.coef_, self.intercept_)
            for key, v in zip(("weight_decays", "val_metric", "objective", "iterations", "fit_time_s"),
                              (weight_decay, value, objective, iterations, time.perf_counter() - t)):
                getattr(result, key).append(v)
            log.info("wd %.3g: val %s %.4f, objective %.6g, %d iterations", weight_decay, metric, value, objective,
                     iterations)
        problem.X = None  # only its basis is kept, for the refit
        result.curve_time_s = time.perf_counter() - start
        # Ties to the stronger regularization: the path is ordered strongest first, argmax takes the first maximum.
        result.chosen_weight_decay = result.weight_decays[int(np.argmax(result.val_metric))]
        return result

    def fit(self, train, weight_decay: float, num_classes: int | None = None) -> "LinearProbe":
        """Fit one value on `train` = (features, labels) to `refit_tol`. At the value `fit_path` chose, the path's
        solution there is the start (the refit on train + val begins close to its optimum); otherwise zeros."""
        num_classes = num_classes or _num_classes(train[1])
        _check(train, "train", num_classes)
        problem = _Centered(*self._tensors(*train), num_classes, self.block_rows, self._path_problem)
        start = self.chosen_start_
        init = problem.from_original(*start[1:]) if start is not None and start[0] == weight_decay else None
        self.objective_, self.n_iter_ = self._fit(problem, weight_decay, init, tol=self.refit_tol)
        return self


class _Centered:
    """Training data in the exact reparametrization of the module docstring: features centered, rotated into the
    eigenbasis of their covariance, numerically null directions dropped; with the maps between (W~, b~) in this
    basis and (coef, intercept) in the original one, and the diagonal preconditioner."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, num_classes: int, block_rows: int = BLOCK_ROWS,
                 like: "_Centered | None" = None):
        """`like`: reuse that problem's basis (exact for any data when it dropped no direction)."""
        n, d = X.shape
        self.y, self.num_classes = y, num_classes
        # curvature of the loss per unit of feature variance: softmax at uniform p (1/K), or a logistic at p = 1/2
        self.curvature = 0.25 if y.ndim == 2 else 1.0 / num_classes
        if like is not None and like.complete:
            self.mean, self.rotation, self.variance, self.complete = like.mean, like.rotation, like.variance, True
            self.X = self._rotated(X, block_rows)
            return
        self.mean = X.mean(0)
        gram_of_rows = n < d  # few examples: eigenvectors from the n x n Gram matrix (rank <= n - 1)
        size = n if gram_of_rows else d
        second = torch.zeros(size, size, dtype=torch.float64, device=X.device)
        for start in range(0, n, block_rows):
            Xb = (X[start:start + block_rows] - self.mean).double()
            if gram_of_rows:
                second[start:start + len(Xb)] = Xb @ (X - self.mean).double().T
            else:
                second += Xb.T @ Xb
        variance, vectors = torch.linalg.eigh(second / n)
        keep = variance > 1e-10 * variance[-1].clamp(min=1e-30)
        variance, vectors = variance[keep], vectors[:, keep]
        if gram_of_rows:  # left singular vectors -> right: u = Xc^T v / sqrt(n lambda)
            vectors = (X - self.mean).double().T @ vectors / torch.sqrt(n * variance)
        self.rotation = vectors.float()  # (d, r)
        self.variance = variance.float()  # (r,)
        self.complete = self.rotation.shape[1] == d  # no direction dropped: the basis serves any data exactly
        self.X = self._rotated(X, block_rows)

    def _rotated(self, X, block_rows):
        return torch.cat([(X[s:s + block_rows] - self.mean) @ self.rotation for s in range(0, len(X), block_rows)])

    def zeros(self):
        r, K = self.rotation.shape[1], self.num_classes
        return torch.zeros(r, K, device=self.X.device), torch.zeros(K, device=self.X.device)

    def preconditioner(self, weight_decay: float):
        """Per-direction scales of W~ (r, 1) and of b~: the inverse square root of the Hessian's diagonal estimate."""
        penalty = weight_decay / self.X.shape[0]
        s_W = torch.rsqrt(self.curvature * self.variance + penalty)[:, None]
        return s_W, torch.tensor(self.curvature ** -0.5, device=self.X.device)

    def to_original(self, W, b):
        coef = self.rotation @ W
        return coef, b - self.mean @ coef

    def from_original(self, coef, intercept):
        return self.rotation.T @ coef, intercept + self.mean @ coef


def _num_classes(*label_arrays) -> int:
    first = np.asarray(label_arrays[0])
    return first.shape[1] if first.ndim == 2 else int(max(np.max(a) for a in label_arrays)) + 1


def _check(data, name: str, num_classes: int) -> None:
    features, labels = np.asarray(data[0]), np.asarray(data[1])
    if features.ndim != 2:
        raise ValueError(f"{name} features must be a 2-D array (examples x dimensions), got shape {features.shape}")
    if not np.isfinite(features).all():
        bad = np.argwhere(~np.isfinite(features))[0]
        raise ValueError(f"{name} features contain NaN or inf (first at row {bad[0]}, column {bad[1]})")
    if len(features) != len(labels):
        raise ValueError(f"{name}: {len(features)} feature rows but {len(labels)} labels")
    if labels.ndim == 2:
        if labels.shape[1] != num_classes or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{name}: multi-label targets must be a 0/1 matrix with {num_classes} columns")
        return
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{name}: label {bad} is out of range; labels must be class indices 0..{num_classes - 1}")
