"""Batched Gaussian-process fits of light curves in time x wavelength (torch; CPU or GPU).

Each object's fluxes are modelled as a zero-mean GP over (time, effective wavelength) with a 2-D
Matern-3/2 kernel, k = amplitude^2 (1 + sqrt(3) r) exp(-sqrt(3) r), r^2 = (dt / time_scale)^2 +
(dlambda / wave_scale)^2, and each observation's own flux error as its noise (Boone 2019,
Avocado). The wavelength scale is fixed (6,000 A: colours change slowly across bands, and a light
curve seen in few bands cannot fit it); amplitude and time scale are fitted per object by
maximising the marginal likelihood.

Objects are fitted many at a time: sorted by length, padded to the longest of each group (a
padded row has unit variance, no covariance and zero flux, so it adds nothing to the likelihood),
the negative log likelihoods summed and minimised with Adam on log parameters. Adam scales each
parameter by its own gradient history, so every object follows its own path, as if fitted alone.
What is kept per object is what re-observation needs: the time scale, the peak time of the GP's
mean, and per observation the weight ``alpha`` = flux_scale * amplitude^2 * (K + N)^-1 y, so that
the mean at any (t, lambda) is sum_i matern32(r_i) alpha_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snia.errors import ConfigError

SQRT3 = math.sqrt(3.0)
PEAK_GRID = 256  # times at which the mean is evaluated to find its peak
# added to every variance (of flux / the object's flux scale): keeps K + N positive definite when
# errors are tiny; the oracle tests add the same
JITTER = 1e-8


@dataclass(frozen=True)
class GPSettings:
    wave_scale: float = 6000.0  # Angstrom: fixed (see the module docstring)
    time_scale: float = 20.0  # days: where the fit starts
    min_time_scale: float = 1.0
    max_time_scale: float = 1000.0
    steps: int = 60  # Adam steps: with lr 0.15, within 0.1 nat of the optimum for 90 % of objects
    lr: float = 0.15  # Adam's step on log parameters
    group: int = 256  # objects fitted together (memory: group x longest^2 x 8 bytes, a few times)
    # days before and after each object's highest-S/N observation that are fitted (None: the
    # whole light curve). Outside it a survey's light curve is baseline noise, which a zero-mean GP
    # fits without help, and the fit's cost grows as the cube of the observations fitted: on
    # PLAsTiCC's training set the window keeps 34 of a median 136 (docs/gp.md)
    window_before: float | None = 50.0
    window_after: float | None = 130.0

    def __post_init__(self):
        if not 0 < self.min_time_scale <= self.time_scale <= self.max_time_scale:
            raise ConfigError("gp: need 0 < min_time_scale <= time_scale <= max_time_scale, not "
                              f"{self.min_time_scale}, {self.time_scale}, {self.max_time_scale}")
        for name in ("wave_scale", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"gp: {name} must be > 0, not {getattr(self, name)}")
        if (self.window_before is None) != (self.window_after is None):
            raise ConfigError("gp: window_before and window_after are both set or both None")
        if self.window_before is not None and not (self.window_before >= 0 and self.window_after >= 0):
            raise ConfigError(f"gp: window_before and window_after must be >= 0, not "
                              f"{self.window_before}, {self.window_after}")
        for name in ("steps", "group"):
            if getattr(self, name) < 1:
                raise ConfigError(f"gp: {name} must be >= 1, not {getattr(self, name)}")


def matern32(r2, torch):
    """The unit-variance Matern-3/2 kernel of squared scaled distances. The clamp keeps the
    gradient finite at r = 0 (where the kernel's own derivative is 0)."""
    r = torch.sqrt(torch.clamp(r2, min=1e-20))
    return (1.0 + SQRT3 * r) * torch.exp(-SQRT3 * r)


def fitted_observations(batch, settings: GPSettings) -> np.ndarray:
    """Which observations are fitted (bool per observation): those within the window around each
    object's highest-S/N observation, or all when the window is None."""
    if settings.window_before is None:
        return np.ones(len(batch.obs["time"]), dtype=bool)
    time = batch.obs["time"]
    snr = batch.obs["flux"] / np.maximum(batch.obs["flux_err"], 1e-30)
    keep = np.zeros(len(time), dtype=bool)
    for a, b in zip(batch.offsets[:-1], batch.offsets[1:]):
        if b > a:
            peak = time[a + int(np.argmax(snr[a:b]))]
            keep[a:b] = (time[a:b] >= peak - settings.window_before) & \
                        (time[a:b] <= peak + settings.window_after)
    return keep


def padded_group(batch, wave, members: np.ndarray, torch, device, fitted=None):
    """Tensors (B, n) of one group of objects of a batch: time (days from the first fitted
    observation), wavelength, normalised flux and variance, and the mask of real rows; with each
    object's flux scale (its largest fitted |flux|, so the fitted amplitude is of order 1).
    ``fitted``: the observations to use (bool per observation; None: all)."""
    rows = [np.arange(batch.offsets[i], batch.offsets[i + 1]) for i in members]
    if fitted is not None:
        rows = [r[fitted[r]] for r in rows]
    n = max(1, max(len(r) for r in rows))
    shape = (len(members), n)
    t, w = np.zeros(shape), np.zeros(shape)
    y, var, mask = np.zeros(shape), np.ones(shape), np.zeros(shape, dtype=bool)
    scale = np.ones(len(members))
    for j, r in enumerate(rows):
        if len(r) == 0:
            continue
        flux = batch.obs["flux"][r].astype(np.float64)
        scale[j] = max(float(np.abs(flux).max()), 1e-6)
        k = len(r)
        t[j, :k] = batch.obs["time"][r] - batch.obs["time"][r[0]]
        w[j, :k] = wave[r]
        y[j, :k] = flux / scale[j]
        var[j, :k] = (batch.obs["flux_err"][r].astype(np.float64) / scale[j]) ** 2
        mask[j, :k] = True
    as_t = [torch.as_tensor(v, device=device) for v in (t, w, y, var, mask, scale)]
    return as_t


def pair_geometry(t, w, mask, wave_scale: float, torch):
    """What a group's covariances are made of that the parameters do not change, computed once:
    squared time differences, squared scaled wavelength differences and the mask of real pairs
    (B, n, n) each."""
    dt2 = (t[:, :, None] - t[:, None, :]) ** 2
    dw2 = ((w[:, :, None] - w[:, None, :]) / wave_scale) ** 2
    pair = (mask[:, :, None] & mask[:, None, :]).to(t.dtype)
    return dt2, dw2, pair


def likelihood(geometry, y, var, mask, log_amp, log_time, torch, gradient: bool = False):
    """Each object's -log p(y) (B,), alpha = (K + N)^-1 y (B, n), the Cholesky status (B,) and,
    when asked, the gradient of -log p with respect to log amplitude and log time scale (B,) each.

    The gradient is written out rather than left to autograd: -d log p / d theta =
    -1/2 sum((alpha alpha^T - (K + N)^-1) * dK/dtheta), with dK/dlog_amp = 2 K and
    dK/dlog_time = amplitude^2 3 exp(-sqrt(3) r) (dt / time_scale)^2 for the Matern-3/2 kernel.
    It takes a third of autograd's passes over the (B, n, n) arrays, which are what the fit's
    time goes to (the Cholesky factorisations themselves are a few percent)."""
    dt2, dw2, pair = geometry
    b, n = y.shape
    u = dt2 * torch.exp(-2.0 * log_time)[:, None, None]  # (dt / time_scale)^2
    r = torch.sqrt(u + dw2)
    e = torch.exp(-SQRT3 * r)
    k0 = r.mul_(SQRT3).add_(1.0).mul_(e).mul_(pair)  # unit-variance kernel of real pairs
    amp2 = torch.exp(2.0 * log_amp)
    cov = k0 * amp2[:, None, None]
    # the noise: each observation's variance (1 on padded rows), and a tiny jitter
    cov.diagonal(dim1=1, dim2=2).add_(var + JITTER)
    chol, info = torch.linalg.cholesky_ex(cov)
    alpha = torch.cholesky_solve(y[:, :, None], chol)[:, :, 0]
    log_det = (torch.log(torch.diagonal(chol, dim1=1, dim2=2)) * mask).sum(dim=1)
    count = mask.sum(dim=1).to(y.dtype)  # an integer tensor times a float would be float32
    nll = 0.5 * (y * alpha).sum(dim=1) + log_det + 0.5 * count * math.log(2 * math.pi)
    if not gradient:
        return nll, alpha, info, None
    w = torch.cholesky_inverse(chol).neg_().add_(alpha[:, :, None] * alpha[:, None, :])

    def traced(dk):  # sum(w * dk) of each object, without a (B, n, n) temporary
        return torch.bmm(w.reshape(b, 1, n * n), dk.reshape(b, n * n, 1))[:, 0, 0]

    grad_amp = -traced(k0) * amp2
    grad_time = -1.5 * traced(e.mul_(u).mul_(pair)) * amp2
    return nll, alpha, info, (grad_amp, grad_time)


def negative_log_likelihood(t, w, y, var, mask, log_amp, log_time, wave_scale, torch):
    """Each object's -log p(y) (B,), and the Cholesky solve alpha = (K + N)^-1 y (B, n)."""
    geometry = pair_geometry(t, w, mask, wave_scale, torch)
    nll, alpha, info, _ = likelihood(geometry, y, var, mask, log_amp, log_time, torch)
    return nll, alpha, info


def fit_group(t, w, y, var, mask, settings: GPSettings, torch):
    """Fitted log amplitude and log time scale of a group of objects (B,): Adam on the summed
    negative log likelihoods, each object's gradient its own (they are independent)."""
    b = t.shape[0]
    geometry = pair_geometry(t, w, mask, settings.wave_scale, torch)
    log_amp = torch.zeros(b, dtype=t.dtype, device=t.device)
    log_time = torch.full((b,), math.log(settings.time_scale), dtype=t.dtype, device=t.device)
    lo, hi = math.log(settings.min_time_scale), math.log(settings.max_time_scale)
    optimiser = torch.optim.Adam([log_amp, log_time], lr=settings.lr)
    for _ in range(settings.steps):
        _, _, _, (log_amp.grad, log_time.grad) = likelihood(geometry, y, var, mask, log_amp,
                                                            log_time, torch, gradient=True)
        optimiser.step()
        log_time.clamp_(lo, hi)
        log_amp.clamp_(math.log(1e-4), math.log(1e2))
    return log_amp, log_time


def peak_times(t, w, mask, alpha_w, log_time, wave_scale, torch):
    """Time of each object's largest GP mean over its observed span, at the wavelengths it was
    observed in (offset from its first observation, like ``t``)."""
    span = (t * mask).max(dim=1).values
    grid = torch.linspace(0.0, 1.0, PEAK_GRID, dtype=t.dtype, device=t.device)[None, :] * span[:, None]
    best = torch.full_like(span, -math.inf)
    peak = torch.zeros_like(span)
    for wave in torch.unique(w[mask]):
        dt = (grid[:, :, None] - t[:, None, :]) / torch.exp(log_time)[:, None, None]
        dw = (wave - w[:, None, :]) / wave_scale
        mean = (matern32(dt * dt + dw * dw, torch) * (alpha_w * mask)[:, None, :]).sum(dim=2)
        seen = ((w == wave) & mask).any(dim=1)  # only bands the object was observed in
        value, where = mean.max(dim=1)
        better = seen & (value > best)
        best = torch.where(better, value, best)
        peak = torch.where(better, grid.gather(1, where[:, None])[:, 0], peak)
    return peak


def length_groups(order: np.ndarray, counts: np.ndarray, size: int):
    """Objects (in ``order``, shortest first) in groups of at most ``size`` whose longest is at
    most a quarter (plus 8 observations) longer than their shortest: padding to the longest costs
    as the square of its length in every pass."""
    start = 0
    while start < len(order):
        stop = min(start + size, len(order))
        limit = 1.25 * counts[order[start]] + 8
        stop = start + max(1, int(np.searchsorted(counts[order[start:stop]], limit, side="right")))
        yield order[start:stop]
        start = stop


def fit_batch(batch, wave: np.ndarray, settings: GPSettings | None = None, device="cpu"):
    """Fit every object of a ``Batch``; ``wave``: each observation's effective wavelength.

    Returns per object ``amplitude`` (flux units), ``time_scale`` (days), ``peak_time`` (MJD),
    ``nll`` (negative log likelihood of its fitted fluxes), ``n_fitted`` (observations in its
    window) and ``failed`` (the Cholesky factorisation failed: its alpha is 0), and per
    observation ``alpha`` (flux units; the mean's weights; 0 outside the window)."""
    import torch

    settings = settings or GPSettings()
    n_objects = len(batch)
    fitted = fitted_observations(batch, settings)
    counts = np.add.reduceat(fitted.astype(np.int64), batch.offsets[:-1]) if len(fitted) else \
        np.zeros(n_objects, dtype=np.int64)
    counts[np.diff(batch.offsets) == 0] = 0  # reduceat repeats a value at an empty object
    out = {"amplitude": np.zeros(n_objects), "time_scale": np.zeros(n_objects),
           "peak_time": np.zeros(n_objects), "nll": np.zeros(n_objects), "n_fitted": counts,
           "failed": np.zeros(n_objects, dtype=bool), "alpha": np.zeros(len(wave))}
    order = np.argsort(counts, kind="stable")  # similar lengths together: little padding
    order = order[counts[order] > 0]
    for members in length_groups(order, counts, settings.group):
        t, w, y, var, mask, scale = padded_group(batch, wave, members, torch, device, fitted)
        log_amp, log_time = fit_group(t, w, y, var, mask, settings, torch)
        with torch.no_grad():
            nll, alpha, info = negative_log_likelihood(t, w, y, var, mask, log_amp, log_time,
                                                       settings.wave_scale, torch)
            amp2 = torch.exp(2 * log_amp)
            alpha_flux = alpha * (scale * amp2)[:, None]  # mean = sum matern32 * alpha_flux
            peak = peak_times(t, w, mask, alpha_flux, log_time, settings.wave_scale, torch)
        failed = (info != 0).cpu().numpy()
        alpha_flux = alpha_flux.cpu().numpy()
        first = np.zeros(len(members))
        for j, i in enumerate(members):
            rows = np.arange(batch.offsets[i], batch.offsets[i + 1])
            rows = rows[fitted[rows]]
            out["alpha"][rows] = 0.0 if failed[j] else alpha_flux[j, :len(rows)]
            first[j] = batch.obs["time"][rows[0]]
        scale_h = scale.cpu().numpy()
        out["amplitude"][members] = np.exp(log_amp.cpu().numpy()) * scale_h
        out["time_scale"][members] = np.exp(log_time.cpu().numpy())
        out["peak_time"][members] = first + peak.cpu().numpy()
        # in flux units: the likelihood of y = flux / scale, less n log(scale)
        out["nll"][members] = nll.cpu().numpy() + counts[members] * np.log(scale_h)
        out["failed"][members] = failed
    return out
