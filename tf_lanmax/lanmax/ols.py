"""Ordinary least squares in float64 with coefficient standard errors (QR, never an inverse)."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class OLSResult:
    """Coefficients, their standard errors and the fit's residual spread."""

    coef: np.ndarray
    stderr: np.ndarray
    residual_std: float
    n: int


def ols(design, response):
    """Least-squares fit ``response ~ design @ coef`` with classical standard errors.

    Solves through a reduced QR of the design (``R coef = Q^T y``), so the normal equations'
    squared condition number is never formed; ``Cov(coef) = s^2 (R^T R)^-1`` with
    ``s^2 = RSS / (n - k)``, computed from ``R^-1`` by triangular solves.

    Args:
        design: (n, k) array, n > k, full column rank.
        response: (n,) array.

    Returns:
        An `OLSResult`; `stderr` is NaN where n == k.

    Raises:
        ValueError: for mismatched shapes, n < k, non-finite values or a rank-deficient design.

    Example:
    >>> X = np.c_[np.ones(50), np.linspace(-1, 1, 50)]
    >>> ols(X, 2 + 3 * X[:, 1]).coef  # -> [2., 3.]
    """
    x = np.asarray(design, dtype=np.float64)
    y = np.asarray(response, dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`design` must be (n, k) with n = len(response). Received: {x.shape} and {y.shape}"
        )
    n, k = x.shape
    if n < k:
        raise ValueError(f"OLS needs at least as many points as coefficients: n={n} < k={k}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("OLS received non-finite values in the design or the response.")
    q, r = np.linalg.qr(x, mode="reduced")
    diag = np.abs(np.diag(r))
    if diag.min() <= 1e-12 * max(diag.max(), 1.0):
        raise ValueError(f"The design is rank deficient (|diag R| = {diag.tolist()}).")
    coef = np.linalg.solve(r, q.T @ y) if k else np.zeros(0)
    resid = y - x @ coef
    dof = n - k
    if dof > 0:
        s2 = float(resid @ resid) / dof
        r_inv = np.linalg.solve(r, np.eye(k))
        stderr = np.sqrt(s2 * np.sum(r_inv * r_inv, axis=1))
    else:
        s2, stderr = float("nan"), np.full(k, np.nan)
    return OLSResult(coef=coef, stderr=stderr, residual_std=float(np.sqrt(s2)), n=n)


def fit_rate_gradient(log_rate_offsets, objective, times=None):
    """LaNMax's numerical gradient: OLS of the objective on ``[1 | x~ - x | t]``.

    Args:
        log_rate_offsets: (n, L) perturbations ``x~ - x`` of ``ln p`` per layer.
        objective: (n,) values ``J_i = alpha E(p~_i) + loss_i``.
        times: optional (n,) within-epoch times; their column absorbs the loss trend as the
            weights train (independent of the perturbations, so it removes variance, not bias).

    Returns:
        `(slopes, stderr, result)`: dJ/d ln p_l per layer, their standard errors, the `OLSResult`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> dx, t = rng.uniform(-0.5, 0.5, (40, 2)), np.linspace(0.0, 1.0, 40)
    >>> J = 2.0 + dx @ np.array([0.3, -0.1]) - 0.5 * t  # noise-free: slopes come back exactly
    >>> slopes, se, _ = fit_rate_gradient(dx, J, t)
    >>> np.round(slopes, 6).tolist()
    [0.3, -0.1]
    """
    dx = np.asarray(log_rate_offsets, dtype=np.float64)
    if dx.ndim == 1:
        dx = dx[:, None]
    columns = [np.ones((dx.shape[0], 1)), dx]
    if times is not None:
        columns.append(np.asarray(times, dtype=np.float64).reshape(-1, 1))
    result = ols(np.concatenate(columns, axis=1), objective)
    layers = slice(1, 1 + dx.shape[1])
    return result.coef[layers], result.stderr[layers], result
