"""The linear probe: L2-regularized logistic regression on frozen features, fitted by L-BFGS.

Convention. For a grid value `wd` (the paper's "weight decay", 45 log-spaced values from 1e-6 to 1e5) the
objective is the *summed* loss plus an L2 penalty on the weights (the bias is not penalized):

    J(W, b) = sum_i loss(W x_i + b, y_i) + (wd / 2) * ||W||^2

which is scikit-learn's LogisticRegression(C = 1 / wd). The loss is the multinomial cross-entropy for
single-label data (labels: class indices, shape (n,)), and for multi-label data (labels: a 0/1 matrix (n, K), as
PASCAL VOC 2007) the sum of K independent binary logistic losses: K binary problems sharing the value of wd.

Solver. J / n (same minimizer, better scaled) is minimized in float32 by L-BFGS with strong-Wolfe line search, on
CPU or GPU alike. The bias (K numbers) is eliminated: at every evaluation it is minimized for the current weights
by Newton's method (warm-started, a K x K system), so L-BFGS runs over W alone on f(W) = min_b J(W, b), which is
strongly convex with modulus wd. The loss and its gradient are computed by hand in blocks of rows (memory besides
the features: logits and residuals, a few (n, K) matrices; no autograd graph). The path runs from the strongest
regularization to the weakest; each fit starts from the previous solution or from a predictor step continuing the
last move (the grid is uniform in log wd), whichever has the lower J, and keeps L-BFGS's curvature pairs of the data
term from the fits before it. Selection picks the best validation metric; ties go to the stronger regularization. The
chosen value is refit on train + val, starting from the path's solution at that value.

Certificate: every fit, path values and refit alike, stops on a bound stated in its own terms, never on a fixed
tolerance on the gradient of J / n (which a good warm start meets at weak regularization without a single step,
whatever its distance to the optimum). Because J is strongly convex in W with modulus wd and the bias is at its
optimum for W, J(W) - J* <= ||grad_W J||^2 / (2 wd): this is the duality gap J(W) - D(alpha) of the dual point
alpha_i = p_i - onehot(y_i), the bias's optimality being exactly the dual constraint sum_i alpha_i = 0. Added to
it is what J could still lose by moving the bias (half the squared Newton decrement of its last step, kept below 1%
of the tolerance). The certificate is the relative gap (J - D) / J, a bound on (J - J*) / J; a fit runs until it is
at most tol (path values: 1e-4, enough for selection; the refit scored on test: 1e-6). Iterations and the
certificate of each value are in PathResult (and in the job's JSON). When J / n can no longer resolve a decrease
(float32 logits, relative changes below about 1e-7), the line search uses the slope alone; if even that makes no
progress, or max_iter is reached, the fit ends with its certificate recorded as not met (`certified` False).

Preconditioning, exact (the objective and its minimizer are unchanged). Penultimate CNN features are non-negative
and strongly correlated, which makes the problem ill-conditioned in the raw coordinates. Because the bias is not
penalized, the features can be centered (x - mu, the bias absorbing W^T mu); because ||W||^2 is invariant under
rotations, they can be expressed in the eigenbasis U of their covariance (W = U W~). In that basis the Hessian of
J / n in W~ is close to Lambda (x) C + wd / n: Lambda the features' variances, C the loss's curvature in the logits
(the bias's Hessian / n, known from its Newton step at the fit's start: (1/K)(I - 11^T/K) at uniform
probabilities, far smaller at weak regularization where they saturate). Its inverse, applied in the eigenbasis of
C, is L-BFGS's initial inverse Hessian. Directions in which the training features do not vary at all
(numerically: variance below 1e-10 of the largest, e.g. when there are fewer examples than dimensions) get no
gradient but the penalty's, so their optimal weight is zero and they are dropped (the certificate is for the
problem without them). `coef_` and `intercept_` are returned in the original coordinates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

# the strong-Wolfe line search that torch.optim.LBFGS runs (no public name)
from torch.optim.lbfgs import _strong_wolfe

from transferbench import metrics
from transferbench.inference import pick_device

log = logging.getLogger(__name__)

BLOCK_ROWS = 16384  # rows per block of the loss/gradient computation (bounds memory at block x K floats)
HISTORY = 20  # L-BFGS correction pairs kept
BIAS_SHARE = 0.01  # the bias's Newton iterations stop when they leave this share of the certificate's tolerance
RESOLVABLE = 1e-5  # below this relative decrease of J / n (float32 logits), line searches use the slope alone


@dataclass
class PathResult:
    weight_decays: list  # in path order: strongest regularization first
    val_metric: list
    objective: list  # J / n at the solution, per grid value
    iterations: list  # L-BFGS iterations of that value's fit (0: its start already met its certificate)
    certificate: list  # relative duality gap (J - D) / J at the solution, a bound on (J - J*) / J (module docstring)
    certified: list  # certificate <= tol
    fit_time_s: list
    tol: float = float("nan")  # the certificate's tolerance
    chosen_weight_decay: float = float("nan")
    curve_time_s: float = 0.0

    def summary(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Point:
    """Weights W~ (r, K) in the problem's basis, the bias b~ (K,) minimizing J at them, and the terms of J / n there
    that do not depend on wd: data loss / n, its gradient in W~, and what J / n could still lose by moving the bias
    (half its squared Newton decrement, / n)."""

    W: torch.Tensor
    b: torch.Tensor
    data: float
    grad_data: torch.Tensor
    bias_gap: float
    curvature: torch.Tensor  # the bias's Hessian / n (K, K), or its diagonal (K,) for binary problems

    def at(self, weight_decay: float, n: int) -> tuple[float, torch.Tensor, float]:
        """J / n, its gradient in W~ and the relative duality gap at this value of wd (kept for the last wd)."""
        cached = self.__dict__.get("_at")
        if cached is None or cached[0] != (weight_decay, n):
            objective = self.data + weight_decay / (2 * n) * float(self.W.pow(2).sum())
            grad = torch.add(self.grad_data, self.W, alpha=weight_decay / n)
            gap = n * float(grad.double().pow(2).sum()) / (2 * weight_decay) + self.bias_gap
            cached = self._at = ((weight_decay, n), (objective, grad, gap / objective))
        return cached[1]


def is_multilabel(labels) -> bool:
    return np.asarray(labels).ndim == 2


class LinearProbe:
    """Logistic regression over a path of L2 strengths (conventions in the module docstring).

    Parameters: weight_decays (the grid; any order), max_iter (L-BFGS iterations per fit), tol (every path fit runs
    until its relative duality gap, a bound on (J - J*) / J, is at most tol; they serve selection), refit_tol (the
    same for `fit`, which makes the final model), device ('auto' | 'cpu' | 'cuda'), block_rows (rows per block).
    """

    def __init__(self, weight_decays, max_iter: int = 1000, tol: float = 1e-4, refit_tol: float = 1e-6,
                 device: str = "auto", block_rows: int = BLOCK_ROWS):
        self.weight_decays = sorted(float(w) for w in weight_decays)
        self.max_iter, self.tol, self.refit_tol, self.block_rows = max_iter, tol, refit_tol, block_rows
        self.device = pick_device(device)
        self.coef_: torch.Tensor | None = None  # (d, K)
        self.intercept_: torch.Tensor | None = None  # (K,)
        self.chosen_start_: tuple | None = None  # (weight decay, coef, intercept) chosen by fit_path: the refit's start
        self._path_problem: _Centered | None = None  # fit_path's basis, reused by the refit when exact
        self.objective_, self.n_iter_ = float("nan"), 0  # set by fit: J / n, L-BFGS iterations,
        self.certificate_, self.certified_ = float("nan"), False  # relative duality gap, and whether <= refit_tol

    def _tensors(self, features, labels):
        X = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        labels = np.asarray(labels)
        y = torch.as_tensor(labels.astype(np.float32 if labels.ndim == 2 else np.int64), device=self.device)
        return X, y

    @staticmethod
    def _residual(z, y):
        """Summed loss (float64) of a block of logits z (overwritten) and its derivative in z, float32-stable."""
        if y.ndim == 2:  # independent binary problems: sigma(z) - y, as -sigma(-z) where y = 1 (no cancellation)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum").double()
            sign = 1 - 2 * y
            return loss, torch.sigmoid(z.mul_(sign)).mul_(sign)
        # multinomial: loss_i = log(1 + sum_{k != y} exp(z_k - z_y)) = softplus(s_i): no cancellation of large logits
        target = y[:, None]
        margins = z.sub_(z.gather(1, target)).scatter_(1, target, float("-inf"))
        per_example = torch.nn.functional.softplus(torch.logsumexp(margins, dim=1))
        residual = torch.exp(margins.sub_(per_example[:, None]))  # p_k for k != y, 0 at y
        residual.scatter_(1, target, -residual.sum(1, keepdim=True))  # p_y - 1 = -sum_{k != y} p_k
        return per_example.sum().double(), residual

    def _bias_terms(self, Z, y, b):
        """At logits Z + b: summed data loss, residual (n, K), and the bias's gradient and Hessian in float64 (the
        Hessian's diagonal for binary problems). The multinomial Hessian sum_i diag(p_i) - p_i p_i^T is assembled
        from the residuals e_i = p_i - onehot_i (diag(sum e_i) - E^T E - M - M^T, M = onehot^T E), accurate when the
        true class's probability is close to 1."""
        n, K = Z.shape
        residuals = []
        loss = torch.zeros((), dtype=torch.float64, device=Z.device)
        grad = torch.zeros(K, dtype=torch.float64, device=Z.device)
        hessian = torch.zeros((K,) if y.ndim == 2 else (K, K), dtype=torch.float64, device=Z.device)
        for start in range(0, n, self.block_rows):
            yb = y[start:start + self.block_rows]
            block_loss, E = self._residual(Z[start:start + self.block_rows] + b, yb)
            residuals.append(E)
            loss += block_loss
            column = E.sum(0)
            grad += column.double()
            if y.ndim == 2:
                a = E.abs()
                hessian += (a * (1 - a)).sum(0).double()
            else:
                M = torch.zeros(K, K, device=Z.device).index_add_(0, yb, E)
                hessian += (torch.diag(column) - E.T @ E - M - M.T).double()
        return float(loss), residuals[0] if len(residuals) == 1 else torch.cat(residuals), grad, hessian

    @staticmethod
    def _newton(grad, hessian):
        """Newton's step for the bias and its squared decrement g^T H^+ g. The multinomial loss does not change when
        all logits move together: its Hessian is singular along the all-ones vector, to which g is orthogonal; the
        step is solved with (H + c 1 1^T), which has the same solution orthogonal to it."""
        if hessian.ndim == 1:
            step = -grad / hessian.clamp(min=1e-300)
        else:
            K = len(grad)
            trace = float(hessian.diagonal().sum())
            system = hessian + max(trace, 1e-300) / K ** 2
            chol, info = torch.linalg.cholesky_ex(system)
            if int(info) == 0:
                step = -torch.cholesky_solve(grad[:, None], chol)[:, 0]
            else:  # numerically singular beyond the all-ones direction
                step = -torch.linalg.pinv(system, hermitian=True) @ grad
            step -= step.mean()
        return step, max(float(-(grad @ step)), 0.0)

    def _optimal_bias(self, Z, y, b, share: float):
        """Minimize the data loss over the bias (K numbers) at fixed logits Z, Newton's method from b, until half the
        squared Newton decrement (what the loss could still lose) is at most `share` of the loss. Returns the bias,
        the summed loss, the residuals and that remaining half decrement."""
        loss, residuals, grad, hessian = self._bias_terms(Z, y, b)
        step, decrement = self._newton(grad, hessian)
        for _ in range(50):
            if decrement / 2 <= share * loss:
                break
            for fraction in (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125):
                trial = b + (fraction * step).to(b.dtype)
                t_loss, t_residuals, t_grad, t_hessian = self._bias_terms(Z, y, trial)
                t_step, t_decrement = self._newton(t_grad, t_hessian)
                # Armijo on the loss; or, once the loss cannot resolve the decrease, a shrinking Newton decrement
                if t_loss <= loss - 0.25 * fraction * decrement or (fraction == 1 and t_decrement < decrement / 4):
                    break
            else:
                break  # no progress at float precision: the remaining decrement is reported as it is
            b, loss, residuals, hessian, step, decrement = trial, t_loss, t_residuals, t_hessian, t_step, t_decrement
        return b, loss, residuals, decrement / 2, hessian

    def _evaluate(self, problem: _Centered, W, b, share: float) -> _Point:
        """The data terms at W~, the bias minimized there (from b): one pass over X for the logits, one for the
        gradient."""
        X, y = problem.X, problem.y
        n = X.shape[0]
        Z = torch.empty(n, W.shape[1], device=X.device)
        for start in range(0, n, self.block_rows):
            torch.mm(X[start:start + self.block_rows], W, out=Z[start:start + self.block_rows])
        b, loss, residuals, bias_gap, hessian = self._optimal_bias(Z, y, b, share)
        del Z
        grad = None  # (1 / n) X~^T residuals, block by block
        for start in range(0, n, self.block_rows):
            blocks = X[start:start + self.block_rows].T, residuals[start:start + self.block_rows]
            grad = torch.addmm(W, *blocks, beta=0, alpha=1 / n) if grad is None else grad.addmm_(*blocks, alpha=1 / n)
        return _Point(W, b, loss / n, grad, bias_gap / n, hessian / n)

    def _minimize(self, problem: _Centered, weight_decay: float, point: _Point, tol: float,
                  history: _History, pair: tuple = ()):
        """L-BFGS over W~, the bias minimized at every evaluation, from `point` until the relative duality gap is at
        most tol. `history`: the correction pairs of earlier fits on the same data, carried on and extended; `pair`:
        one more (s, y of the data term), from a point evaluated before.
        Returns (point, J / n, relative gap, iterations)."""
        n = problem.X.shape[0]
        history.start(weight_decay / n, problem.preconditioner(weight_decay, point.curvature))
        if pair:
            history.add(*pair)
        objective, grad, certificate = point.at(weight_decay, n)
        iterations = 0
        while certificate > tol and iterations < self.max_iter:
            g = grad.flatten()
            direction = -history.direction(grad).flatten()
            slope = g.dot(direction)
            if not slope < 0:  # not a descent direction (float trouble): restart from the preconditioned gradient
                history.clear()
                direction = -history.direction(grad).flatten()
                slope = g.dot(direction)
            tried = {}

            def evaluate(x, t, d, point=point, tried=tried):
                tried[float(t)] = trial = self._evaluate(problem, (x + t * d).view_as(point.W), point.b,
                                                         BIAS_SHARE * tol)
                trial_objective, trial_grad, _ = trial.at(weight_decay, n)
                return trial_objective, trial_grad.flatten()

            x, t = point.W.flatten(), None
            if -float(slope) > RESOLVABLE * objective:
                new_objective, _, t, _ = _strong_wolfe(evaluate, x, 1.0, direction, objective, g, slope)
                t = t if new_objective < objective else None
            if t is None:
                # J / n cannot resolve the decrease (about -slope / 2; float32 logits): search on the slope alone
                t = _slope_search(lambda t, x=x, d=direction: float(evaluate(x, t, d)[1].dot(d)), float(slope))
                if t is None:
                    break  # no progress: the certificate stays as it is (reported, not met)
            new = tried[float(t)]
            history.add(new.W - point.W, new.grad_data - point.grad_data)
            point, iterations = new, iterations + 1
            objective, grad, certificate = point.at(weight_decay, n)
        return point, objective, certificate, iterations

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
        n = problem.X.shape[0]
        val_features = problem.transform(torch.as_tensor(np.asarray(val[0], dtype=np.float32), device=self.device))
        chosen = None
        result = PathResult([], [], [], [], [], [], [], tol=self.tol)
        solution, previous, history = None, None, _History()
        for weight_decay in reversed(self.weight_decays):  # strongest first: warm starts move toward weaker L2
            t, pair = time.perf_counter(), ()
            if solution is None:
                begin = self._evaluate(problem, *problem.zeros(), BIAS_SHARE * self.tol)
            else:
                begin = solution  # its bias and data terms do not depend on wd: J at the new wd needs no pass
                if previous is not None:
                    # Predictor step of path following: the grid is uniform in log(wd), so continue the last move.
                    # At weak L2 the solution drifts along a flat valley, where a plain warm start stalls.
                    predicted = self._evaluate(problem, 2 * solution.W - previous.W, solution.b,
                                               BIAS_SHARE * self.tol)
                    if predicted.at(weight_decay, n)[0] < begin.at(weight_decay, n)[0]:
                        begin = predicted
                    pair = (predicted.W - solution.W, predicted.grad_data - solution.grad_data)  # curvature, free
            point, objective, certificate, iterations = self._minimize(problem, weight_decay, begin, self.tol,
                                                                       history, pair)
            previous, solution = solution, point
            value = metrics.score(metric, val[1], torch.addmm(point.b, val_features, point.W).cpu().numpy())
            if not result.val_metric or value > max(result.val_metric):  # the choice so far (ties: stronger L2)
                chosen = (weight_decay, point)
            for key, v in zip(("weight_decays", "val_metric", "objective", "iterations", "certificate", "certified",
                               "fit_time_s"), (weight_decay, value, objective, iterations, certificate,
                                               certificate <= self.tol, time.perf_counter() - t)):
                getattr(result, key).append(v)
            log.info("wd %.3g: val %s %.4f, objective %.6g, %d iterations, relative gap %.2g", weight_decay, metric,
                     value, objective, iterations, certificate)
        problem.X = None  # only its basis is kept, for the refit
        self.coef_, self.intercept_ = problem.to_original(solution.W, solution.b)  # the last (weakest) value's
        self.chosen_start_ = (chosen[0], *problem.to_original(chosen[1].W, chosen[1].b))
        result.curve_time_s = time.perf_counter() - start
        # Ties to the stronger regularization: the path is ordered strongest first, argmax takes the first maximum.
        result.chosen_weight_decay = result.weight_decays[int(np.argmax(result.val_metric))]
        return result

    def fit(self, train, weight_decay: float, num_classes: int | None = None) -> LinearProbe:
        """Fit one value on `train` = (features, labels) to `refit_tol`. At the value `fit_path` chose, the path's
        solution there is the start (the refit on train + val begins close to its optimum); otherwise zeros.
        Sets objective_ (J / n), n_iter_, certificate_ (relative duality gap) and certified_."""
        num_classes = num_classes or _num_classes(train[1])
        _check(train, "train", num_classes)
        problem = _Centered(*self._tensors(*train), num_classes, self.block_rows, self._path_problem)
        start = self.chosen_start_
        init = problem.from_original(*start[1:]) if start is not None and start[0] == weight_decay else None
        begin = self._evaluate(problem, *(init or problem.zeros()), BIAS_SHARE * self.refit_tol)
        point, self.objective_, self.certificate_, self.n_iter_ = self._minimize(problem, weight_decay, begin,
                                                                                 self.refit_tol, _History())
        self.coef_, self.intercept_ = problem.to_original(point.W, point.b)
        self.certified_ = self.certificate_ <= self.refit_tol
        return self


def _slope_search(slope_at, slope0: float, c: float = 0.9, max_evals: int = 20):
    """A step t along a descent direction with |phi'(t)| <= c |phi'(0)|, phi(t) = J / n along it, found from the
    slope alone (secant steps on phi', bracketing its zero): phi is convex, and on its quadratic model such a step
    (t below 1 + c times the minimizing one) decreases phi. None when none is found."""
    lo, lo_slope, hi, hi_slope, t = 0.0, slope0, None, None, 1.0
    for _ in range(max_evals):
        slope = slope_at(t)
        if abs(slope) <= c * abs(slope0):
            return t
        if slope < 0:
            lo, lo_slope = t, slope
        else:
            hi, hi_slope = t, slope
        if hi is None:
            t *= 4
        else:
            secant = lo - lo_slope * (hi - lo) / (hi_slope - lo_slope)
            t = min(max(secant, lo + 0.1 * (hi - lo)), hi - 0.1 * (hi - lo))
    return None


class _Preconditioner:
    """The inverse P^-1 of a Kronecker estimate of the Hessian of J / n in W~ (module docstring): the features'
    variances (r,) times the loss's curvature C (the bias's Hessian / n, (K, K), or its diagonal (K,) for binary
    problems), plus wd / n; diagonal in the features' eigenbasis (that of W~) times C's eigenbasis Q."""

    def __init__(self, variance, curvature, penalty: float):
        if curvature.ndim == 1:
            values, self.Q = curvature, None
        else:
            values, Q = torch.linalg.eigh(curvature)
            self.Q = Q.float()
        self.inverse = 1 / (variance[:, None] * values.float().clamp(min=0)[None, :] + penalty)

    def rotate(self, G):
        """G (..., r, K) in C's eigenbasis, where P^-1 is diagonal (`inverse`)."""
        return G if self.Q is None else G @ self.Q

    def unrotate(self, G):
        return G if self.Q is None else G @ self.Q.T

    def __call__(self, G):
        return self.unrotate(self.rotate(G) * self.inverse)


class _History:
    """L-BFGS's correction pairs (s, y) and its inverse-Hessian estimate H in the compact form of Byrd, Nocedal and
    Schnabel (1994), from H0 = gamma P^-1 (gamma = s.y / y.P^-1 y of the latest pair): H g takes a few products
    with the stacked pairs, not two small operations per pair. The pairs are kept for the data term (s, y_data) and
    carry over from one value of wd to the next, where y = y_data + wd/n s."""

    def __init__(self, size: int = HISTORY):
        self.size, self.order = size, []  # order: the rows in use, oldest first

    def clear(self):
        self.order = []

    def start(self, penalty: float, precondition: _Preconditioner):
        """Begin a value of wd (penalty = wd / n) with its preconditioner."""
        self.penalty, self.precondition = penalty, precondition
        k = len(self.order)
        if k:
            self.YQ[:k] = precondition.rotate(torch.add(self.Yd[:k], self.S[:k], alpha=penalty))
            self.YPY[:k, :k] = self._products(self.YQ[:k] * precondition.inverse, self.YQ[:k])
            if not (np.diag(self.SYd + penalty * self.SS)[:k] > 0).all():
                self.clear()

    @staticmethod
    def _products(A, B):
        return (A.flatten(1) @ B.flatten(1).T).double().cpu().numpy()

    def add(self, s, y_data):
        """Append a pair (oldest dropped beyond `size`), unless its curvature s.y is not positive."""
        y = y_data + self.penalty * s
        if not float(s.flatten().dot(y.flatten())) > 1e-10 * float(s.norm()) * float(y.norm()):
            return
        if not self.order:
            self.S, self.Yd, self.YQ = (torch.empty((self.size,) + s.shape, device=s.device) for _ in range(3))
            self.SYd, self.SS, self.YPY = (np.zeros((self.size, self.size)) for _ in range(3))
        row = len(self.order) if len(self.order) < self.size else self.order.pop(0)
        self.S[row], self.Yd[row], self.YQ[row] = s, y_data, self.precondition.rotate(y)
        self.order.append(row)
        k, new = len(self.order), slice(row, row + 1)
        self.SYd[:k, row] = self._products(self.S[:k], self.Yd[new])[:, 0]  # s_i . y_data_new
        self.SYd[row, :k] = self._products(self.Yd[:k], self.S[new])[:, 0]  # s_new . y_data_j
        self.SS[:k, row] = self.SS[row, :k] = self._products(self.S[:k], self.S[new])[:, 0]
        self.YPY[:k, row] = self.YPY[row, :k] = self._products(self.YQ[:k] * self.precondition.inverse,
                                                               self.YQ[new])[:, 0]

    def direction(self, g):
        """H g."""
        P = self.precondition
        gq = P.rotate(g) * P.inverse  # P^-1 g, rotated
        if not self.order:
            return P.unrotate(gq)
        order, k = self.order, len(self.order)
        S, YQ = self.S[:k].flatten(1), self.YQ[:k].flatten(1)
        a = (S @ g.flatten()).double().cpu().numpy()[order]  # S g
        b = (YQ @ gq.flatten()).double().cpu().numpy()[order]  # Y P^-1 g
        rows = np.ix_(order, order)
        SY, YPY = self.SYd[rows] + self.penalty * self.SS[rows], self.YPY[rows]
        gamma = SY[-1, -1] / YPY[-1, -1]
        R = np.triu(SY)
        r_a = np.linalg.solve(R, a)
        top = np.linalg.solve(R.T, (np.diag(np.diag(SY)) + gamma * YPY) @ r_a - gamma * b)
        on_S, on_Y = np.zeros(k), np.zeros(k)
        on_S[order], on_Y[order] = top, -r_a
        on_S, on_Y = (torch.as_tensor(v, dtype=g.dtype, device=g.device) for v in (on_S, on_Y))
        # H g = gamma P^-1 (g + Y^T on_Y) + S^T on_S, P^-1 applied once in C's eigenbasis
        rotated = (gq.flatten() + (on_Y @ YQ) * P.inverse.flatten()).view_as(g).mul_(gamma)
        return P.unrotate(rotated).add_((on_S @ S).view_as(g))


class _Centered:
    """Training data in the exact reparametrization of the module docstring: features centered, rotated into the
    eigenbasis of their covariance, numerically null directions dropped; with the maps between (W~, b~) in this
    basis and (coef, intercept) in the original one, and the preconditioner."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, num_classes: int, block_rows: int = BLOCK_ROWS,
                 like: _Centered | None = None):
        """`like`: reuse that problem's basis (exact for any data when it dropped no direction)."""
        n, d = X.shape
        self.y, self.num_classes, self.block_rows = y, num_classes, block_rows
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

    def transform(self, X):
        """Features in this basis (centered, rotated): their logits are X~ W~ + b~."""
        return self._rotated(X, self.block_rows)

    def zeros(self):
        r, K = self.rotation.shape[1], self.num_classes
        return torch.zeros(r, K, device=self.X.device), torch.zeros(K, device=self.X.device)

    def preconditioner(self, weight_decay: float, curvature: torch.Tensor) -> _Preconditioner:
        """P^-1 for this value of wd, with the loss's curvature C (the bias's Hessian / n) at the fit's start."""
        return _Preconditioner(self.variance, curvature, weight_decay / self.X.shape[0])

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
