"""Augmentation: fresh, physically motivated variants of the training light curves every epoch.

The training set (PLAsTiCC's, and any spectroscopically confirmed one) is brighter, nearer and
more densely observed than the survey a classifier is applied to. Each variant, per object:
- drops a random share of the observations (at least one is kept); deep-drilling-field objects
  lose more (50-90 %), since the wide survey they must stand in for is far sparser;
- shifts all times by up to ``time_shift`` days;
- adds Gaussian flux noise of k sigma, k uniform in [0, ``flux_noise``], errors grown to
  sqrt(1 + k^2) sigma so they still describe the scatter;
- with probability ``redshift_probability``, moves an extragalactic object (photo-z > 0) from z to
  a higher z': times dilate by (1+z')/(1+z), fluxes dim by the luminosity-distance ratio squared
  (flat LCDM), while the errors do not shrink (sky noise dominates in a fainter survey; they even
  grow by up to 50 %): noise is added to reach them. Its photo-z becomes z' and each observation's
  effective wavelength its band's x (1+z')/(1+z) (``obs["wave"]``, used by the heatmap images);
- with ``detection_trigger``, a moved object must pass PLAsTiCC's detection trigger (two points at
  S/N >= 5): up to ``redshift_tries`` draws of z', else it stays at z (its measured effect:
  docs/results.md);
- with a ``noise_floor`` (per band: the wide survey's typical flux error, ``wide_survey_noise``),
  deep-drilling and moved objects get errors of at least this floor (x 0.7-1.3 per object) and the
  matching added noise: a fainter object does not get a quieter sky.

Every random number is a function of (seed, epoch, object id, observation index, purpose)
(``stream``), so a variant does not depend on the rank, batch or device that draws it, and every
backend draws the same: ``reference`` (NumPy, the test oracle), ``cpu`` (Numba, objects in
parallel) and ``numba_cuda`` (the same per-object math, ``shared``, on an NVIDIA GPU), one
``augment`` over them in ``dispatch``. This file only names what the package offers.
"""

from snia.augment.config import AugmentConfig
from snia.augment.cpu import augment_cpu
from snia.augment.dispatch import BACKENDS, augment, wide_survey_noise
from snia.augment.reference import augment_numpy, luminosity_distance, passes_detection_trigger

__all__ = ["BACKENDS", "AugmentConfig", "augment", "augment_cpu", "augment_numpy",
           "luminosity_distance", "passes_detection_trigger", "wide_survey_noise"]
