"""Augmentation settings (``augment:`` under the training settings)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from snia.augment.shared import MAX_REDSHIFT_TRIES
from snia.errors import ConfigError


@dataclass
class AugmentConfig:
    """Augmentation settings (``augment:`` under the training settings)."""

    enabled: bool = True
    time_shift: float = 5.0  # days: uniform shift of the reference time
    drop_fraction: float = 0.3  # up to this fraction of observations dropped per object
    # extra Gaussian flux noise of up to this many sigma per object (errors grow to match)
    flux_noise: float = 0.0
    # chance to move an object to a higher redshift each time it is drawn: the test set is
    # fainter and at higher redshift than the training set
    redshift_probability: float = 1.0
    redshift_max: float = 1.2
    # the target survey's redshift distribution as quantiles at equal probability steps (e.g.
    # 21: 0 %, 5 %, ..., 100 %; `snia store redshifts STORE` prints them): a move then draws the
    # new redshift from that distribution above the object's own (up to its last quantile)
    # instead of uniformly up to redshift_max; empty: uniform
    redshift_quantiles: tuple = ()
    # keep only redshift moves the survey would detect (two points at S/N >= 5), trying up to
    # redshift_tries draws; off by default (its measured effect: docs/results.md)
    detection_trigger: bool = False
    redshift_tries: int = 5
    # early classification: with this chance, an object is seen as a survey saw it a uniform
    # 0..truncate_days days after its first detection (off by default; see docs/results.md)
    truncate_probability: float = 0.0
    truncate_days: float = 50.0
    # re-observation as the survey would (snia.augment.reobserve): with this chance an object is
    # replaced by its GP (`snia gp fit`) seen through a survey light curve's schedule, noise and
    # photo-z (the training settings' `survey`), trying up to reobserve_tries draws for one the
    # survey detects; 0: off
    reobserve_probability: float = 0.0
    reobserve_tries: int = 10

    def __post_init__(self):
        self.redshift_quantiles = tuple(float(q) for q in self.redshift_quantiles)
        q = self.redshift_quantiles
        if q and (len(q) < 2 or q[0] < 0 or any(b < a for a, b in zip(q, q[1:]))
                  or not all(math.isfinite(v) for v in q)):
            raise ConfigError("augment.redshift_quantiles must be two or more finite, "
                              f"non-negative, non-decreasing redshifts, not {list(q)}")
        for name in ("drop_fraction", "redshift_probability", "truncate_probability",
                     "reobserve_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment.{name} must be in [0, 1], not {getattr(self, name)}")
        for name in ("time_shift", "flux_noise", "redshift_max", "truncate_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name} must be >= 0, not {getattr(self, name)}")
        for name in ("redshift_tries", "reobserve_tries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"augment.{name} must be >= 1, not {getattr(self, name)}")
        if self.redshift_tries > MAX_REDSHIFT_TRIES:
            raise ConfigError(f"augment.redshift_tries must be in [1, {MAX_REDSHIFT_TRIES}] (each try "
                              f"draws from its own random stream, and there are {MAX_REDSHIFT_TRIES}), "
                              f"not {self.redshift_tries}")
