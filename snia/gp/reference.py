"""The GP fit written plainly, one object at a time with NumPy and SciPy: the test oracle of
``snia.gp.fit`` (same model: zero mean, 2-D Matern-3/2, each observation's error as its noise)."""

from __future__ import annotations

import math

import numpy as np

SQRT3 = math.sqrt(3.0)


def matern32(r2: np.ndarray) -> np.ndarray:
    r = np.sqrt(r2)
    return (1.0 + SQRT3 * r) * np.exp(-SQRT3 * r)


def kernel(t1, w1, t2, w2, time_scale: float, wave_scale: float) -> np.ndarray:
    """Unit-variance kernel between two sets of (time, wavelength) points."""
    dt = (np.asarray(t1)[:, None] - np.asarray(t2)[None, :]) / time_scale
    dw = (np.asarray(w1)[:, None] - np.asarray(w2)[None, :]) / wave_scale
    return matern32(dt * dt + dw * dw)


def negative_log_likelihood(t, w, flux, err, amplitude, time_scale, wave_scale) -> float:
    """-log N(flux | 0, amplitude^2 K + diag(err^2))."""
    cov = amplitude ** 2 * kernel(t, w, t, w, time_scale, wave_scale) + np.diag(np.asarray(err, float) ** 2)
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, flux)
    return 0.5 * z @ z + np.log(np.diag(chol)).sum() + 0.5 * len(flux) * math.log(2 * math.pi)


def alpha(t, w, flux, err, amplitude, time_scale, wave_scale) -> np.ndarray:
    """The mean's weights: amplitude^2 (amplitude^2 K + N)^-1 flux, so mean(x) = sum_i
    matern32(r(x, x_i)) alpha_i."""
    cov = amplitude ** 2 * kernel(t, w, t, w, time_scale, wave_scale) + np.diag(np.asarray(err, float) ** 2)
    return amplitude ** 2 * np.linalg.solve(cov, flux)


def mean(t_new, w_new, t, w, weights, time_scale, wave_scale) -> np.ndarray:
    """The GP's posterior mean at new (time, wavelength) points."""
    return kernel(t_new, w_new, t, w, time_scale, wave_scale) @ weights


def fit(t, w, flux, err, wave_scale: float, bounds=((1e-4, 1e2), (1.0, 1000.0))):
    """Maximum-likelihood (amplitude, time scale) of one object by L-BFGS-B on log parameters;
    the amplitude bound is relative to the object's largest |flux|, as in ``snia.gp.fit``."""
    from scipy.optimize import minimize

    scale = max(float(np.abs(flux).max()), 1e-6)

    def objective(p):
        return negative_log_likelihood(t, w, flux, err, scale * math.exp(p[0]), math.exp(p[1]), wave_scale)

    log_bounds = [(math.log(bounds[0][0]), math.log(bounds[0][1])),
                  (math.log(bounds[1][0]), math.log(bounds[1][1]))]
    best = None
    for start in (math.log(20.0), math.log(5.0), math.log(100.0)):  # a few starts: the optimum
        res = minimize(objective, [0.0, start], method="L-BFGS-B", bounds=log_bounds)
        if best is None or res.fun < best.fun:
            best = res
    return scale * math.exp(best.x[0]), math.exp(best.x[1]), float(best.fun)
