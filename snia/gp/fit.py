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
    steps: int = 80  # Adam steps
    lr: float = 0.1  # Adam's step on log parameters
    group: int = 256  # objects fitted together (memory: group x longest^2 x 8 bytes, a few times)

    def __post_init__(self):
        if not 0 < self.min_time_scale <= self.time_scale <= self.max_time_scale:
            raise ConfigError("gp: need 0 < min_time_scale <= time_scale <= max_time_scale, not "
                              f"{self.min_time_scale}, {self.time_scale}, {self.max_time_scale}")
        for name in ("wave_scale", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"gp: {name} must be > 0, not {getattr(self, name)}")
        for name in ("steps", "group"):
            if getattr(self, name) < 1:
                raise ConfigError(f"gp: {name} must be >= 1, not {getattr(self, name)}")


def matern32(r2, torch):
    """The unit-variance Matern-3/2 kernel of squared scaled distances. The clamp keeps the
    gradient finite at r = 0 (where the kernel's own derivative is 0)."""
    r = torch.sqrt(torch.clamp(r2, min=1e-20))
    return (1.0 + SQRT3 * r) * torch.exp(-SQRT3 * r)


def padded_group(batch, wave, members: np.ndarray, torch, device):
    """Tensors (B, n) of one group of objects of a batch: time, wavelength, normalised flux and
    variance, and the mask of real rows; with each object's flux scale (its largest |flux|, so the
    fitted amplitude is of order 1)."""
    lengths = np.diff(batch.offsets)[members]
    n = int(lengths.max())
    shape = (len(members), n)
    t, w = np.zeros(shape), np.zeros(shape)
    y, var, mask = np.zeros(shape), np.ones(shape), np.zeros(shape, dtype=bool)
    scale = np.ones(len(members))
    for j, i in enumerate(members):
        a, b = batch.offsets[i], batch.offsets[i + 1]
        flux = batch.obs["flux"][a:b].astype(np.float64)
        scale[j] = max(float(np.abs(flux).max()), 1e-6) if b > a else 1.0
        k = b - a
        t[j, :k] = batch.obs["time"][a:b] - batch.obs["time"][a]
        w[j, :k] = wave[a:b]
        y[j, :k] = flux / scale[j]
        var[j, :k] = (batch.obs["flux_err"][a:b].astype(np.float64) / scale[j]) ** 2
        mask[j, :k] = True
    as_t = [torch.as_tensor(v, device=device) for v in (t, w, y, var, mask, scale)]
    return as_t


def covariance(t, w, var, mask, log_amp, log_time, wave_scale, torch):
    """K + N of each object of a group (B, n, n); padded rows: unit diagonal, nothing else."""
    dt = (t[:, :, None] - t[:, None, :]) / torch.exp(log_time)[:, None, None]
    dw = (w[:, :, None] - w[:, None, :]) / wave_scale
    pair = (mask[:, :, None] & mask[:, None, :]).to(t.dtype)
    k = torch.exp(2 * log_amp)[:, None, None] * matern32(dt * dt + dw * dw, torch) * pair
    # the noise: each observation's variance (1 on padded rows), and a tiny jitter
    return k + torch.diag_embed(var + JITTER)


def negative_log_likelihood(t, w, y, var, mask, log_amp, log_time, wave_scale, torch):
    """Each object's -log p(y) (B,), and the Cholesky solve alpha = (K + N)^-1 y (B, n)."""
    cov = covariance(t, w, var, mask, log_amp, log_time, wave_scale, torch)
    chol, info = torch.linalg.cholesky_ex(cov)
    alpha = torch.cholesky_solve(y[:, :, None], chol)[:, :, 0]
    log_det = (torch.log(torch.diagonal(chol, dim1=1, dim2=2)) * mask).sum(dim=1)
    n = mask.sum(dim=1).to(t.dtype)  # an integer tensor times a float would be float32
    nll = 0.5 * (y * alpha).sum(dim=1) + log_det + 0.5 * n * math.log(2 * math.pi)
    return nll, alpha, info


def fit_group(t, w, y, var, mask, settings: GPSettings, torch):
    """Fitted log amplitude and log time scale of a group of objects (B,), and their final
    negative log likelihood (in normalised flux units)."""
    b = t.shape[0]
    log_amp = torch.zeros(b, dtype=t.dtype, device=t.device, requires_grad=True)
    log_time = torch.full((b,), math.log(settings.time_scale), dtype=t.dtype, device=t.device,
                          requires_grad=True)
    lo, hi = math.log(settings.min_time_scale), math.log(settings.max_time_scale)
    optimiser = torch.optim.Adam([log_amp, log_time], lr=settings.lr)
    for _ in range(settings.steps):
        optimiser.zero_grad()
        nll, _, _ = negative_log_likelihood(t, w, y, var, mask, log_amp, log_time,
                                            settings.wave_scale, torch)
        nll.sum().backward()  # objects are independent: the sum's gradient is each one's own
        optimiser.step()
        with torch.no_grad():
            log_time.clamp_(lo, hi)
            log_amp.clamp_(math.log(1e-4), math.log(1e2))
    return log_amp.detach(), log_time.detach()


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


def fit_batch(batch, wave: np.ndarray, settings: GPSettings = GPSettings(), device="cpu"):
    """Fit every object of a ``Batch``; ``wave``: each observation's effective wavelength.

    Returns per object ``amplitude`` (flux units), ``time_scale`` (days), ``peak_time`` (MJD),
    ``nll`` (negative log likelihood of its fluxes) and ``failed`` (the Cholesky factorisation
    failed: its alpha is 0), and per observation ``alpha`` (flux units; the mean's weights)."""
    import torch

    n_objects = len(batch)
    lengths = np.diff(batch.offsets)
    out = {"amplitude": np.zeros(n_objects), "time_scale": np.zeros(n_objects),
           "peak_time": np.zeros(n_objects), "nll": np.zeros(n_objects),
           "failed": np.zeros(n_objects, dtype=bool), "alpha": np.zeros(len(wave))}
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    order = order[lengths[order] > 0]
    for start in range(0, len(order), settings.group):
        members = order[start:start + settings.group]
        t, w, y, var, mask, scale = padded_group(batch, wave, members, torch, device)
        log_amp, log_time = fit_group(t, w, y, var, mask, settings, torch)
        with torch.no_grad():
            nll, alpha, info = negative_log_likelihood(t, w, y, var, mask, log_amp, log_time,
                                                       settings.wave_scale, torch)
            amp2 = torch.exp(2 * log_amp)
            alpha_flux = alpha * (scale * amp2)[:, None]  # mean = sum matern32 * alpha_flux
            peak = peak_times(t, w, mask, alpha_flux, log_time, settings.wave_scale, torch)
        failed = (info != 0).cpu().numpy()
        alpha_flux = alpha_flux.cpu().numpy()
        for j, i in enumerate(members):
            a, b = batch.offsets[i], batch.offsets[i + 1]
            out["alpha"][a:b] = 0.0 if failed[j] else alpha_flux[j, :b - a]
        first = batch.obs["time"][batch.offsets[members]]
        scale_h = scale.cpu().numpy()
        out["amplitude"][members] = np.exp(log_amp.cpu().numpy()) * scale_h
        out["time_scale"][members] = np.exp(log_time.cpu().numpy())
        out["peak_time"][members] = first + peak.cpu().numpy()
        # in flux units: the likelihood of y = flux / scale, less n log(scale)
        out["nll"][members] = nll.cpu().numpy() + lengths[members] * np.log(scale_h)
        out["failed"][members] = failed
    return out
