"""Calibration: a P(Ia) that means what it says.

A network trained with balanced class weights on a bright, low-redshift training set ranks objects
well but its scores are not probabilities. Platt scaling (Platt 1999) maps a model's score to a
probability, P = sigmoid(a logit(p) + b), fitted on held-out objects: the validation split, which
the model never trained on, with Platt's smoothed targets (N+ + 1)/(N+ + 2) and 1/(N- + 2), as
scikit-learn's ``CalibratedClassifierCV(method="sigmoid")`` fits it. The fitted map is monotone,
so the AUC and the ranking do not change; thresholds such as P(Ia) >= 0.5 then mean what they say
for data with the validation split's share of SNe Ia. For data with another, known share ``q``
(a survey's expected Ia fraction), the prior odds are replaced: logit P += logit(q) - logit(q_fit)
(the model's likelihood ratio is unchanged; Bayes' theorem with the new prior).

When the share is not known, ``estimate_prior`` finds it from the data themselves: the
expectation-maximisation of Saerens, Latinne & Decaestecker (2002, Neural Computation 14, 21)
alternates moving every calibrated P(Ia) to the current share and taking their mean as the next
share; it converges to the maximum-likelihood share given the model's likelihood ratios
(``--ia-prior estimate`` of ``snia classify`` and ``snia evaluate``). It is as
right as the calibration is on the new data: a survey fainter than the validation split shifts
the light curves themselves, not only the class mix (docs/results.md measures it).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(y, p, fitted_on: str = "validation split") -> dict | None:
    """Platt's (a, b) for scores ``p`` of objects with labels ``y`` (1: Ia); None when the objects
    hold one class only (there is nothing to fit)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        return None
    # Platt's smoothed targets, as two weighted copies of every object (one per label)
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    x = np.tile(logit(p), 2)[:, None]
    labels = np.r_[np.ones(len(y)), np.zeros(len(y))]
    weights = np.r_[target, 1 - target]
    fit = LogisticRegression(C=1e12, tol=1e-10, max_iter=1000).fit(x, labels, sample_weight=weights)
    return {"method": "platt", "a": float(fit.coef_[0, 0]), "b": float(fit.intercept_[0]),
            "fitted_on": fitted_on, "objects": len(y), "prior": positives / len(y)}


def calibrate(p, calibration: dict, prior: float | None = None) -> np.ndarray:
    """Calibrated P(Ia) of scores ``p``; ``prior``: the share of SNe Ia in the data, if known."""
    z = calibration["a"] * logit(p) + calibration["b"]
    if prior is not None:
        if not 0 < prior < 1:
            raise ValueError(f"an Ia prior must be in (0, 1), not {prior}")
        z = z + logit(prior) - logit(calibration["prior"])
    return 1 / (1 + np.exp(-z))


def shift_prior(p, fitted: float, prior: float) -> np.ndarray:
    """Calibrated P(Ia) ``p`` for data with Ia share ``fitted`` moved to a share ``prior``."""
    z = logit(p) + logit(prior) - logit(fitted)
    return 1 / (1 + np.exp(-z))


def estimate_prior(p, fitted: float, tol: float = 1e-6, max_iter: int = 1000) -> float:
    """The Ia share of data whose calibrated P(Ia) (at the share ``fitted`` of the calibration
    objects) are ``p``: the EM of Saerens et al. (2002), from ``fitted``."""
    p = np.asarray(p, dtype=np.float64)
    if not len(p):
        raise ValueError("no objects to estimate an Ia share from")
    q = fitted
    for _ in range(max_iter):
        new = float(np.clip(np.mean(shift_prior(p, fitted, q)), EPS, 1 - EPS))
        if abs(new - q) < tol:
            return new
        q = new
    return q


def estimate_ensemble_prior(scores: list, calibrations: list[dict], tol: float = 1e-6,
                            max_iter: int = 1000) -> float:
    """The Ia share of data scored ``scores`` (one array per member) by members calibrated by
    ``calibrations``, whose P(Ia) is the mean of the members' calibrated P(Ia): the same EM,
    each step moving every member to the current share (for one member, ``estimate_prior``)."""
    if not len(scores) or not len(scores[0]):
        raise ValueError("no objects to estimate an Ia share from")
    q = float(np.mean([c["prior"] for c in calibrations]))
    for _ in range(max_iter):
        new = float(np.clip(np.mean([calibrate(s, c, q) for s, c in zip(scores, calibrations)]),
                            EPS, 1 - EPS))
        if abs(new - q) < tol:
            return new
        q = new
    return q


def describe(calibration: dict | None, prior: float | None = None) -> str:
    if not calibration:
        return "uncalibrated (the model carries no calibration)"
    text = (f"calibrated ({calibration['method']} scaling fitted on the {calibration['fitted_on']}, "
            f"{calibration['objects']} objects, Ia share {calibration['prior']:.3f}; "
            f"a {calibration['a']:.3f}, b {calibration['b']:.3f})")
    return text if prior is None else f"{text}, moved to an Ia share of {prior:.3f}"
