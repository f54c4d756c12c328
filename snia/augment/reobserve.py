"""Re-observation as the survey would: a labelled light curve's Gaussian process (``snia.gp``)
seen through one of the survey's own observing schedules, at a redshift the survey has.

For an object at redshift z (its host photo-z, as the redshift move of ``snia.augment`` uses), a
draw takes one survey light curve s whose host photo-z z' is at least z (extragalactic objects;
a galactic object takes a galactic schedule and stays at z = 0) and uses, of it, only what an
observing plan and a photo-z catalogue tell: its observation times, bands and flux errors, its
photo-z and deep-drilling flag; never its fluxes or its label. The object's peak is placed within
15 days of one of the schedule's observations, drawn uniformly (so in a season the survey
watched, as the survey's detected objects are); each survey observation at time T in a band of wavelength lambda
sees the GP at rest-frame-equivalent time (T - T_peak) (1+z)/(1+z') from the GP's peak and
wavelength lambda (1+z)/(1+z'); the GP's mean is dimmed by (d_L(z)/d_L(z'))^2, like the redshift
move's, and given the survey observation's own error as Gaussian noise. The draw is kept if the
survey would have detected it (two points at S/N >= 5); up to ``reobserve_tries`` draws, else the
object keeps its other augmentation.

Draws come from the counter-based stream (``snia.augment.stream``) keyed by (seed, epoch, object
id), so a variant is fresh every epoch and the same whichever rank or batch draws it. This runs
on the host (NumPy): the survey's schedules and the GP curves are small (tens of bytes per
observation) and the per-object work is a few small matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snia.augment import stream
from snia.augment.reference import concatenate_observations, luminosity_distance, passes_detection_trigger
from snia.gp import reference as gp_reference
from snia.lightcurve import Batch, offsets_from_lengths

# what each random number is for (the stream's purpose): apart from the thinning and redshift
# move's 1..15 and 11 + 16 t (``snia.augment.shared``); tries are told apart by the index
CHOOSE, SCHEDULE, PLACE, NOISE, JITTER = 240, 241, 242, 243, 244
TRY_INDEX = 1 << 24  # index = try * TRY_INDEX + observation: no light curve is that long
PEAK_JITTER = 15.0  # days: the peak is placed this close to an observation of the schedule


@dataclass
class Schedules:
    """The survey's observing schedules: per survey object its observations' times, bands and
    flux errors (flat, ``offsets``), its host photo-z, photo-z error and deep-drilling flag;
    ``by_z`` orders the objects by photo-z (for drawing one at or above a redshift)."""

    offsets: np.ndarray
    time: np.ndarray
    band: np.ndarray
    flux_err: np.ndarray
    photoz: np.ndarray
    photoz_err: np.ndarray
    ddf: np.ndarray

    def __post_init__(self):
        self.by_z = np.argsort(self.photoz, kind="stable")
        self.sorted_z = self.photoz[self.by_z]
        self.galactic = np.flatnonzero(self.photoz == 0)

    @classmethod
    def from_store(cls, store, limit: int = 50_000, seed: int = 0) -> Schedules:
        """At most ``limit`` of a store's objects (a fixed random sample beyond it), reading only
        observation times, bands and errors and the objects' photo-z and flags: the survey's
        fluxes and labels are never read."""
        table = store.file["objects"]  # read column by column: never the labels

        def column(name, rows):
            return table[name][...][rows]

        n = len(store)
        chosen = np.arange(n) if n <= limit else \
            np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
        photoz = np.nan_to_num(column("hostgal_photoz", chosen).astype(np.float64), nan=0.0)
        keep = chosen[photoz >= 0]
        lengths = column("length", keep)
        first = column("offset", keep)
        rows = np.concatenate([np.arange(a, a + k) for a, k in zip(first, lengths)]) if len(keep) \
            else np.zeros(0, np.int64)
        obs = store.file["observations"]
        columns = {name: obs[name][...][rows] for name in ("time", "band", "flux_err")}
        ddf = column("ddf", keep) if "ddf" in table else np.zeros(len(keep), np.int8)
        return cls(offsets=offsets_from_lengths(lengths), time=columns["time"].astype(np.float64),
                   band=columns["band"], flux_err=columns["flux_err"].astype(np.float64),
                   photoz=np.nan_to_num(column("hostgal_photoz", keep).astype(np.float64), nan=0.0),
                   photoz_err=np.nan_to_num(column("hostgal_photoz_err", keep).astype(np.float64)),
                   ddf=ddf)

    def __len__(self) -> int:
        return len(self.photoz)

    def pick(self, z: float, u: float) -> int:
        """A survey object, uniformly among those at photo-z >= z; for z = 0 among the galactic
        ones, or any when the survey has none (its cadence is still the survey's); -1 when there
        is none."""
        if z <= 0:
            pool = self.galactic if len(self.galactic) else self.by_z
            return int(pool[int(u * len(pool))]) if len(pool) else -1
        lo = int(np.searchsorted(self.sorted_z, z, side="left"))
        if lo >= len(self):
            return -1
        return int(self.by_z[lo + int(u * (len(self) - lo))])


@dataclass
class GPCurves:
    """Per object of the training store, what its GP mean needs: the fitted observations' times
    (days from the mean's peak), wavelengths and weights (flat, ``offsets``), its time scale, the
    fit's wavelength scale, and the object's redshift (host photo-z, NaN and < 0 read as 0)."""

    offsets: np.ndarray
    time: np.ndarray
    wave: np.ndarray
    alpha: np.ndarray
    time_scale: np.ndarray
    wave_scale: float
    z: np.ndarray

    @classmethod
    def from_fits(cls, store, fits) -> GPCurves:
        """From a store and its fits (``snia.gp.file.read_fits``); failed fits have no rows."""
        objects = store.objects
        obs = store.file["observations"]
        time = obs["time"][...].astype(np.float64)
        wavelengths = np.array([b.wavelength for b in store.bands.bands], dtype=np.float64)
        wave = wavelengths[obs["band"][...]]
        used = fits.alpha != 0
        owner = np.repeat(np.arange(len(store)), objects["length"])
        peak = fits.objects["peak_time"]
        rows = np.flatnonzero(used)
        lengths = np.bincount(owner[rows], minlength=len(store))
        z = np.nan_to_num(objects["hostgal_photoz"].astype(np.float64), nan=0.0)
        return cls(offsets=offsets_from_lengths(lengths), time=time[rows] - peak[owner[rows]],
                   wave=wave[rows], alpha=fits.alpha[rows], time_scale=fits.objects["time_scale"],
                   wave_scale=float(fits.settings.wave_scale), z=np.maximum(z, 0.0))

    def mean(self, i: int, time: np.ndarray, wave: np.ndarray) -> np.ndarray:
        """Object i's GP mean at (days from its peak, wavelength) points."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return gp_reference.mean(time, wave, self.time[a:b], self.wave[a:b], self.alpha[a:b],
                                 self.time_scale[i], self.wave_scale)


def cached_distance(z: float, cache: dict) -> float:
    """``luminosity_distance`` remembered per redshift: a survey has few distinct photo-z values
    next to the draws made of them."""
    if z not in cache:
        cache[z] = luminosity_distance(z)
    return cache[z]


def reobserve_object(i: int, key: int, draws: dict, seed: int, epoch: int, cfg, curves: GPCurves,
                     survey: Schedules, band_wave: np.ndarray, distances: dict):
    """Store object i (object id ``key``) re-observed (see the module docstring): its
    observations and the survey object whose schedule it took, or None (not drawn for
    re-observation, no GP, no schedule, or no detected draw). ``draws``: its uniform numbers,
    ``choose`` and per try ``schedule``, ``place`` and ``jitter``."""
    if draws["choose"] >= cfg.reobserve_probability or curves.offsets[i + 1] == curves.offsets[i]:
        return None
    z = float(curves.z[i])
    for attempt in range(cfg.reobserve_tries):
        s = survey.pick(z, draws["schedule"][attempt])
        if s < 0:
            return None
        a, b = survey.offsets[s], survey.offsets[s + 1]
        times, bands, err = survey.time[a:b], survey.band[a:b], survey.flux_err[a:b]
        z_new = float(survey.photoz[s]) if z > 0 else 0.0
        stretch = (1.0 + z_new) / (1.0 + z)
        dim = (cached_distance(z, distances) / cached_distance(z_new, distances)) ** 2 \
            if z > 0 else 1.0
        # the peak near one of the schedule's observations (a season the survey watched)
        peak = times[int(draws["place"][attempt] * len(times))] + \
            PEAK_JITTER * (2.0 * draws["jitter"][attempt] - 1.0)
        mean = curves.mean(i, (times - peak) / stretch, band_wave[bands] / stretch)
        noise = stream.normal(seed, epoch, key, attempt * TRY_INDEX + np.arange(len(times)), NOISE)
        flux = mean * dim + err * noise
        if passes_detection_trigger(flux, err):
            obs = {"time": times.copy(), "band": bands.astype(np.int8), "flux": flux,
                   "flux_err": err.copy(), "wave": band_wave[bands]}
            return obs, s
    return None


def batch_draws(keys: np.ndarray, seed: int, epoch: int, tries: int) -> dict:
    """Every object's uniform numbers for re-observation, drawn for the batch at once (the same
    as one object at a time: the stream is a function of the key)."""
    keys = np.asarray(keys)[:, None]
    index = (np.arange(tries) * TRY_INDEX)[None, :]
    return {"choose": stream.uniform(seed, epoch, keys[:, 0], 0, CHOOSE),
            **{name: stream.uniform(seed, epoch, keys, index, purpose)
               for name, purpose in (("schedule", SCHEDULE), ("place", PLACE), ("jitter", JITTER))}}


def reobserve(batch: Batch, indices: np.ndarray, epoch: int, seed: int, cfg, curves: GPCurves,
              survey: Schedules, band_wave) -> Batch:
    """A batch (already augmented or not) with each object drawn for re-observation replaced by
    its re-observed light curve; ``indices``: the objects' rows in the training store (their GP
    curves). Meta of a replaced object: the survey object's photo-z, its error and its flag."""
    band_wave = np.asarray(band_wave, dtype=np.float64)
    meta = {k: np.array(v, copy=True) for k, v in batch.meta.items()}
    draws = batch_draws(batch.object_id, seed, epoch, cfg.reobserve_tries)
    distances: dict = {}
    parts = []
    for j in range(len(batch)):
        mine = {name: values[j] for name, values in draws.items()}
        drawn = reobserve_object(int(indices[j]), int(batch.object_id[j]), mine, seed, epoch, cfg,
                                 curves, survey, band_wave, distances)
        if drawn is None:
            lc = batch.lightcurve(j)
            wave = lc["wave"] if "wave" in lc else band_wave[lc["band"]]
            parts.append({"time": lc["time"], "band": lc["band"], "flux": lc["flux"],
                          "flux_err": lc["flux_err"], "wave": wave})
            continue
        obs, s = drawn
        parts.append(obs)
        if curves.z[int(indices[j])] > 0:  # a galactic object keeps its photo-z of 0
            meta["hostgal_photoz"][j] = survey.photoz[s]
            meta["hostgal_photoz_err"][j] = survey.photoz_err[s]
        if "ddf" in meta:
            meta["ddf"][j] = survey.ddf[s]
    lengths = [len(p["time"]) for p in parts]
    return Batch(batch.object_id, offsets_from_lengths(lengths), concatenate_observations(parts), meta)


def reobserved_copy(batch: Batch, indices: np.ndarray, copy: int, seed: int, curves: GPCurves,
                    survey: Schedules, band_wave) -> Batch:
    """Copy ``copy`` of each object, re-observed (every object drawn, up to 10 draws): the copies
    of ``snia baseline`` and of the teachers' check (``snia.train.blend``), the same light curves
    for the same (seed, copy) whichever batch draws them."""
    from snia.augment.config import AugmentConfig

    settings = AugmentConfig(reobserve_probability=1.0, reobserve_tries=10)
    return reobserve(batch, indices, copy, seed, settings, curves, survey, band_wave)
