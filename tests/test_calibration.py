"""Calibration (snia.calibration): Platt scaling against scikit-learn's, the prior shift by Bayes'
rule, and the EM estimate of a data set's Ia share."""

from __future__ import annotations

import numpy as np
import pytest


def test_platt_calibration_is_scikit_learns_sigmoid_calibration():
    """fit_platt + calibrate give what CalibratedClassifierCV(method="sigmoid") gives for a
    classifier whose decision function is the logit of the scores."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from snia.calibration import calibrate, fit_platt, logit

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, x, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, x):
            return x[:, 0]

        def predict(self, x):
            return (x[:, 0] > 0).astype(int)

    rng = np.random.default_rng(3)
    y = (rng.random(800) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, 800) + 1.5 * y - 0.2)))  # overconfident-ish scores
    x = logit(p)[:, None]
    # ensemble=False: one sigmoid fitted on the (frozen) scores of all objects
    sklearn_p = CalibratedClassifierCV(FrozenEstimator(Scores().fit(x, y)), method="sigmoid",
                                       ensemble=False).fit(x, y).predict_proba(x)[:, 1]
    calibration = fit_platt(y, p)
    np.testing.assert_allclose(calibrate(p, calibration), sklearn_p, atol=1e-4)
    assert calibration["objects"] == 800 and calibration["prior"] == pytest.approx(y.mean())
    assert fit_platt(np.ones(5), np.full(5, 0.9)) is None  # one class: nothing to fit


def test_a_known_ia_share_moves_the_prior_odds():
    """Bayes: the likelihood ratio stays, the prior odds change. Identity map fitted at an Ia
    share of 0.5: a score of 0.5 becomes the new share, and the odds scale by q / (1 - q)."""
    from snia.calibration import calibrate

    identity = {"method": "platt", "a": 1.0, "b": 0.0, "prior": 0.5}
    assert calibrate(0.5, identity, prior=0.8) == pytest.approx(0.8)
    p = calibrate(0.6, identity, prior=0.2)
    assert p / (1 - p) == pytest.approx((0.6 / 0.4) * (0.2 / 0.8))
    np.testing.assert_allclose(calibrate([0.1, 0.9], identity), [0.1, 0.9])
    with pytest.raises(ValueError, match="prior"):
        calibrate(0.5, identity, prior=1.0)


def test_em_finds_the_ia_share_of_data_whose_likelihood_ratios_are_exact():
    """Two Gaussian score classes with a known likelihood ratio: the exact posterior at a
    fitted share of 0.3 holds enough for EM (Saerens et al. 2002) to find the data's share, 0.7,
    to within its sampling error; data of the fitted share give the fitted share back."""
    from snia.calibration import estimate_prior, shift_prior

    rng = np.random.default_rng(11)

    def posterior_at(fitted, share, n=20_000):
        y = rng.random(n) < share
        x = rng.normal(np.where(y, 1.0, -1.0), 1.0)
        ratio = np.exp(2 * x)  # N(x; 1, 1) / N(x; -1, 1)
        odds = ratio * fitted / (1 - fitted)
        return odds / (1 + odds), y.mean()

    p, true = posterior_at(0.3, 0.7)
    assert estimate_prior(p, 0.3) == pytest.approx(true, abs=0.01)
    p, true = posterior_at(0.3, 0.3)
    assert estimate_prior(p, 0.3) == pytest.approx(true, abs=0.01)
    assert shift_prior(0.3, 0.3, 0.7) == pytest.approx(0.7)  # the mean object moves with the share
    with pytest.raises(ValueError, match="no objects"):
        estimate_prior([], 0.3)


def test_the_ensembles_em_moves_each_member_and_equals_em_for_one_member():
    """One member: the ensemble EM is estimate_prior on its calibrated P(Ia). Two members whose
    calibrations are exact for the same scores (one fitted at share 0.3, one at 0.5, each
    mapping its scores to the same posterior at its share) find the same data share, 0.7."""
    from snia.calibration import calibrate, estimate_ensemble_prior, estimate_prior, logit

    rng = np.random.default_rng(12)
    y = rng.random(20_000) < 0.7
    x = rng.normal(np.where(y, 1.0, -1.0), 1.0)  # log likelihood ratio 2x
    one = {"a": 1.0, "b": 0.0, "prior": 0.3}
    scores_one = 1 / (1 + np.exp(-(2 * x + logit(0.3))))  # the exact posterior at 0.3
    assert estimate_ensemble_prior([scores_one], [one]) == pytest.approx(
        estimate_prior(calibrate(scores_one, one), 0.3), abs=1e-6)
    # a second member whose scores are 2x (logit 0) with Platt a = 1, b = logit(0.5) = 0
    two = {"a": 1.0, "b": 0.0, "prior": 0.5}
    scores_two = 1 / (1 + np.exp(-2 * x))
    assert estimate_ensemble_prior([scores_one, scores_two], [one, two]) == pytest.approx(
        y.mean(), abs=0.01)
