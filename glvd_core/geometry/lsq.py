"""Small least-squares solvers in numpy (what the reconstruction path needs, without scipy, which
Blender does not ship): Levenberg-Marquardt with a finite-difference Jacobian, and linear least
squares with bounds on some variables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def levenberg_marquardt(residual: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, max_iterations: int = 200,
                        tol: float = 1e-10) -> np.ndarray:
    """x minimising ``|residual(x)|^2`` from ``x0`` (n,): Levenberg-Marquardt with Marquardt's
    diagonal scaling and a forward-difference Jacobian (steps sqrt(eps) * max(1, |x_i|)). Stops
    when a step changes the cost by less than ``tol`` relatively, or moves x by less than
    ``tol`` * (|x| + tol)."""
    x = np.asarray(x0, np.float64).copy()
    r = residual(x)
    cost = float(r @ r)
    lam = 1e-3
    h = np.sqrt(np.finfo(float).eps)
    for _ in range(max_iterations):
        J = np.empty((len(r), len(x)))
        for i in range(len(x)):
            d = h * max(1.0, abs(x[i]))
            xp = x.copy()
            xp[i] += d
            J[:, i] = (residual(xp) - r) / d
        JtJ, g = J.T @ J, J.T @ r
        diag = np.maximum(np.diag(JtJ), 1e-12)
        while True:
            step = np.linalg.solve(JtJ + lam * np.diag(diag), -g)
            r_new = residual(x + step)
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                break
            lam *= 10
            if lam > 1e12:
                return x
        x, r, improved = x + step, r_new, cost - cost_new
        done = improved <= tol * cost or np.linalg.norm(step) <= tol * (np.linalg.norm(x) + tol)
        cost = cost_new
        lam = max(lam / 10, 1e-12)
        if done:
            break
    return x


def bounded_least_squares(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                          max_iterations: int = 1000) -> np.ndarray:
    """x minimising ``|A x - b|^2`` subject to ``lo <= x <= hi`` (infinite bounds allowed), for A
    (m, n) of full column rank: a primal active-set method on the normal equations (the unique
    solution, as scipy's ``lsq_linear``)."""
    H, g = A.T @ A, A.T @ b
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    n = len(g)
    x = np.clip(np.zeros(n), lo, hi)
    at_lo, at_hi = x <= lo, x >= hi  # the working set: variables held at a bound
    for _ in range(max_iterations):
        fixed = at_lo | at_hi
        free = ~fixed
        target = x.copy()
        if free.any():
            target[free] = np.linalg.solve(H[np.ix_(free, free)], g[free] - H[np.ix_(free, fixed)] @ x[fixed])
        d = target - x
        # the longest step towards the target that stays within the bounds
        with np.errstate(divide="ignore", invalid="ignore"):
            t_lo = np.where(free & (d < 0), (lo - x) / d, np.inf)
            t_hi = np.where(free & (d > 0), (hi - x) / d, np.inf)
        t = min(1.0, float(t_lo.min()), float(t_hi.min()))
        x = x + t * d
        if t < 1.0:  # a bound blocks the step: hold that variable there
            j = int(np.argmin(np.minimum(t_lo, t_hi)))
            if t_lo[j] <= t_hi[j]:
                x[j], at_lo[j] = lo[j], True
            else:
                x[j], at_hi[j] = hi[j], True
            continue
        grad = H @ x - g  # optimal when no held variable wants to leave its bound
        wants_out = np.where(at_lo, -grad, 0.0) + np.where(at_hi, grad, 0.0)
        if not fixed.any() or wants_out.max() <= 1e-12 * max(1.0, np.abs(g).max()):
            return x
        j = int(np.argmax(wants_out))
        at_lo[j] = at_hi[j] = False
    raise RuntimeError("bounded least squares did not converge")
