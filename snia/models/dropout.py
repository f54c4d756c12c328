"""Dropout whose mask for a sample is a hash of that sample's key, not a draw from an RNG stream.

With ``nn.Dropout`` each DDP rank draws masks from its own RNG state in its own order, so N ranks
and one rank with the same settings take different steps. Here the mask of unit u of a sample
with key k is a counter-based hash: ``splitmix64(k + (u + 1) * 0x9E3779B97F4A7C15)``, the unit
dropped where its top 24 bits are below ``p * 2**24``. The trainer keys each sample by (seed,
epoch, store index of the object) (``sample_keys``), so the mask follows the object, whatever
rank, batch position or resume it is seen in. The hash is vectorised torch int64 arithmetic
(multiplications wrap; logical shifts are arithmetic shifts masked), cheap next to the layer it
follows; a NumPy uint64 oracle in the tests pins it down.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's increment
MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
SALT = 0xD1B54A32D192ED03  # separates dropout keys from other uses of (seed, epoch, index)
THRESHOLD_BITS = 24


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> on int64 is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer on int64 tensors (the bits of uint64 arithmetic, wrapping)."""
    z = (z ^ _srl(z, 30)) * _signed(MIX[0])
    z = (z ^ _srl(z, 27)) * _signed(MIX[1])
    return z ^ _srl(z, 31)


def _mix_np(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX[0])
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX[1])
    return z ^ (z >> np.uint64(31))


def sample_keys(seed: int, epoch: int, index, device=None) -> torch.Tensor:
    """One int64 key per sample from (seed, epoch, store index): independent of ranks and order."""
    base = _mix_np(np.array([(seed * GOLDEN + SALT) % 2 ** 64], dtype=np.uint64))
    base = _mix_np(base + np.uint64(epoch % 2 ** 64))
    keys = _mix_np(base + np.asarray(index, dtype=np.int64).astype(np.uint64))
    return torch.from_numpy(keys.view(np.int64)).to(device, non_blocking=True)  # no wait on a GPU


class KeyedDropout(nn.Module):
    """Inverted dropout with a mask keyed per sample (see the module docstring); none in eval."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), not {p}")
        self.p = p
        self.threshold = round(p * 2 ** THRESHOLD_BITS)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if keys is None:
            raise ValueError("dropout in training needs per-sample keys (snia.models.sample_keys): "
                             "masks drawn from each rank's RNG would make ranks train differently")
        units = torch.arange(1, x.shape[1] + 1, dtype=torch.int64, device=x.device)
        z = splitmix64(keys.to(x.device)[:, None] + units[None, :] * _signed(GOLDEN))
        keep = _srl(z, 64 - THRESHOLD_BITS) >= self.threshold
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
