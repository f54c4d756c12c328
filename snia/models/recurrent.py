"""A recurrent classifier (GRU or LSTM) over the raw observation sequence of each light curve.

The image models see a light curve through a raster of fixed time bins; this one reads the
observations themselves, in time order, one step each: the time since the previous observation,
the band (one-hot), and flux and flux error divided by the object's peak flux (the scale rule of
the images, ``snia.raster.reference._scale``, so both kinds of model see fluxes of order one).
Sequences of different lengths are padded into one tensor and packed
(``pack_padded_sequence``) before the recurrent layers, so padding never enters the computation:
an object's output does not depend on how long the other objects of its batch are. The last
hidden state (for a bidirectional network, the backward direction's state after reading back to
the first observation too) joins the per-object scalars (host photo-z, its error, log10 flux
scale: the ``scalars`` the image models take) in a small head with dropout keyed per sample, as in
``snia.models.cnn``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from snia.errors import ConfigError
from snia.lightcurve import Batch
from snia.models.dropout import KeyedDropout
from snia.models.head import HeadConfig
from snia.raster import RasterSpec
from snia.raster.cpu import object_references

CELLS = ("gru", "lstm")


def n_features(n_bands: int) -> int:
    """Features per observation: time step, one-hot band, flux, flux error."""
    return n_bands + 3


@dataclass
class RecurrentConfig(HeadConfig):
    cell: str = "gru"  # "gru" or "lstm"
    hidden: int = 64  # recurrent state size, and the width of the head's embedding
    layers: int = 2
    bidirectional: bool = False
    n_bands: int = 6  # band-registry indices 0..n_bands-1 (one-hot width)
    # (days before, days after) the object's peak: only those observations are read, the window
    # the images show (RasterSpec's t_before, t_after). None: the whole light curve, which
    # transferred worse to the fainter test example (docs/results.md row 28)
    window: tuple[float, float] | None = (RasterSpec.t_before, RasterSpec.t_after)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"recurrent cell must be one of {CELLS}, not {self.cell!r}")
        if self.window is not None:
            self.window = tuple(float(d) for d in self.window)  # a list from JSON or YAML
            if len(self.window) != 2 or min(self.window) < 0:
                raise ConfigError(f"recurrent window must be two day counts >= 0 (before, after "
                                  f"the peak), not {self.window}")
        for name in ("hidden", "layers", "n_bands"):
            if getattr(self, name) < 1:
                raise ConfigError(f"recurrent {name} must be at least 1, not {getattr(self, name)}")


def peak_fluxes(flux: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-object flux scale: the peak flux, else the largest |flux| (a light curve with no
    positive flux), else 1 (all zero or no observations); ``snia.raster.reference._scale``."""
    lengths = np.diff(offsets)
    peaks = np.ones(len(lengths))
    nonempty = lengths > 0
    if nonempty.any():
        # reduceat over the starts of the non-empty objects: each segment runs to the next
        # non-empty start, and empty objects own no rows in between
        starts = offsets[:-1][nonempty] - offsets[0]
        top = np.maximum.reduceat(flux, starts)
        biggest = np.maximum.reduceat(np.abs(flux), starts)
        peaks[nonempty] = np.where(top > 0, top, np.where(biggest > 0, biggest, 1.0))
    return peaks


def sequence_features(batch: Batch, n_bands: int, max_length: int | None = None,
                      window: tuple[float, float] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded per-observation features of a (cleaned, time-ordered) ``Batch`` of NumPy arrays.

    Returns ``(features float32 [N, L, n_bands + 3], lengths int64 [N])``. Per observation:
    log1p(days since the previous observation of the object; 0 for the first), the one-hot band,
    flux / peak and flux_err / peak (peak: see ``peak_fluxes``, over all of the object's observations).
    log1p because the gaps span four decades, from minutes between bands in one night to seasons
    of months: it keeps same-night steps nearly linear (log1p(x) ~ x) and a 200-day gap at 5.3,
    inputs of order one for the recurrent gates. ``window`` (days before, after): only the
    observations within it around the object's peak (where the images centre it) are read; the peak flux still
    comes from all of them. L is ``max_length`` when given (longer objects keep their first
    ``max_length`` observations), else the longest object (at least 1); rows past an object's
    length are zero and never read by the model.
    """
    if max_length is not None and max_length < 1:
        raise ConfigError(f"max_length must be at least 1, not {max_length}")
    offsets = np.asarray(batch.offsets, dtype=np.int64)
    rows = slice(int(offsets[0]), int(offsets[-1]))
    time = np.asarray(batch.obs["time"][rows], dtype=np.float64)
    band = np.asarray(batch.obs["band"][rows]).astype(np.int64)
    flux = np.asarray(batch.obs["flux"][rows], dtype=np.float64)
    err = np.asarray(batch.obs["flux_err"][rows], dtype=np.float64)
    peak = peak_fluxes(flux, offsets)  # from the whole light curve, window or not
    if window is not None:
        n_obs = np.diff(offsets)
        obj = np.repeat(np.arange(len(n_obs)), n_obs)
        t_peak = object_references(offsets - offsets[0], time, flux, err, "peak")[0][obj]
        inside = (time >= t_peak - window[0]) & (time <= t_peak + window[1])
        time, band, flux, err = time[inside], band[inside], flux[inside], err[inside]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(obj[inside], minlength=len(n_obs)))])
    full = np.diff(offsets)
    n = len(full)
    width = max_length if max_length is not None else max(int(full.max(initial=0)), 1)
    lengths = np.minimum(full, width)
    outside = (band < 0) | (band >= n_bands)
    if outside.any():
        raise ConfigError(f"band index {int(band[outside][0])} is outside the model's "
                          f"n_bands={n_bands} (indices 0..{n_bands - 1})")

    obj = np.repeat(np.arange(n), full)
    pos = np.arange(len(time)) - (offsets[obj] - offsets[0])  # index within the object
    step = np.zeros(len(time))
    step[1:] = np.diff(time)
    step[pos == 0] = 0.0  # first observation of each object: no previous one
    if np.any(step < 0):
        raise ValueError("observations must be time-ordered within each object "
                         "(snia.lightcurve.clean_chunk orders them)")
    peak = peak[obj]

    features = np.zeros((n, width, n_features(n_bands)), dtype=np.float32)
    keep = pos < width
    o, p = obj[keep], pos[keep]
    features[o, p, 0] = np.log1p(step[keep])
    features[o, p, 1 + band[keep]] = 1.0
    features[o, p, 1 + n_bands] = flux[keep] / peak[keep]
    features[o, p, 2 + n_bands] = err[keep] / peak[keep]
    return torch.from_numpy(features), torch.from_numpy(lengths.astype(np.int64))


class RecurrentClassifier(nn.Module):
    def __init__(self, config: RecurrentConfig):
        super().__init__()
        self.config = config
        cell = nn.GRU if config.cell == "gru" else nn.LSTM
        # no dropout between recurrent layers: nn.GRU/nn.LSTM draw it from each rank's RNG, which
        # would make data-parallel ranks train differently; the head's dropout is keyed per sample
        self.rnn = cell(n_features(config.n_bands), config.hidden, config.layers,
                        batch_first=True, bidirectional=config.bidirectional)
        self.directions = 2 if config.bidirectional else 1
        self.embedding = nn.Sequential(
            nn.Linear(self.directions * config.hidden + config.n_scalars, config.hidden), nn.ReLU())
        self.dropout = KeyedDropout(config.dropout)  # no parameters: checkpoints keep their keys
        self.head = nn.Linear(config.hidden, config.n_classes)

    def summary(self, sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last layer's final hidden state per object, [N, directions * hidden].

        Packing means each object's state is taken after its own last observation, never after
        padding. An object of no observations (none survive ``clean_chunk``) reads one zero row.
        """
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu().clamp(min=1)
        packed = pack_padded_sequence(sequences, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        n = sequences.shape[0]
        h = h.view(self.config.layers, self.directions, n, self.config.hidden)[-1]
        return h.transpose(0, 1).reshape(n, self.directions * self.config.hidden)

    def embed(self, sequences: torch.Tensor, lengths: torch.Tensor, scalars: torch.Tensor,
              keys: torch.Tensor | None = None) -> torch.Tensor:
        """The penultimate representation (for t-SNE plots). ``keys``: one per sample
        (``snia.models.sample_keys``), needed in training with dropout."""
        x = torch.cat([self.summary(sequences, lengths), scalars], dim=1)
        return self.dropout(self.embedding(x), keys)

    def forward(self, sequences: torch.Tensor, lengths: torch.Tensor, scalars: torch.Tensor,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(sequences, lengths, scalars, keys))
