"""An AlexNet-style classifier of light-curve images: the big model of the architecture comparison.

AlexNet's shape (Krizhevsky et al. 2012) scaled to images of a few to a few tens of pixels a side:
wide first convolutions with many channels (a kernel longer along time than along wavelength or
band), max pooling only after the first, second and last convolution (three halvings take 16 rows
to 2; more would leave nothing to convolve), adaptive average pooling to a small fixed grid so any
image size gives the same number of features, and a large fully connected head with dropout
between its layers. GroupNorm, not BatchNorm or AlexNet's local response normalisation, after every
convolution: its statistics do not depend on how a global batch is split over data-parallel ranks.
The per-object scalars (host photo-z, its error, log10 flux scale) join the flattened features at
the first fully connected layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import torch
from torch import nn

from snia.errors import ConfigError
from snia.models.dropout import GOLDEN, KeyedDropout, splitmix64
from snia.models.head import ImageConfig


@dataclass
class AlexNetConfig(ImageConfig):
    channels: tuple[int, ...] = (64, 192, 384, 256, 256)  # one convolution each
    kernel: tuple[int, int] = (5, 7)  # first convolution (rows, time columns); odd sizes
    groups: int = 8  # GroupNorm groups (at most; fewer where they do not divide the width)
    pool: tuple[int, int] = (2, 4)  # adaptive average pooling grid before the fully connected head
    fc: tuple[int, ...] = (1024, 1024)  # fully connected widths; the last one is the embedding
    dropout: float = 0.5  # after each fully connected layer, as in AlexNet

    def __post_init__(self):
        self.channels, self.kernel = tuple(self.channels), tuple(self.kernel)
        self.pool, self.fc = tuple(self.pool), tuple(self.fc)
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"alexnet channels must be one or more positive widths, "
                              f"not {self.channels}")
        if len(self.kernel) != 2 or min(self.kernel) < 1 or not all(k % 2 for k in self.kernel):
            raise ConfigError(f"alexnet kernel must be two odd sizes (rows, columns), "
                              f"not {self.kernel}")
        if len(self.pool) != 2 or min(self.pool) < 1:
            raise ConfigError(f"alexnet pool must be two positive sizes, not {self.pool}")
        if not self.fc or min(self.fc) < 1:
            raise ConfigError(f"alexnet fc must be one or more positive widths, not {self.fc}")


def norm(width: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups, as many as divide ``width``."""
    return nn.GroupNorm(gcd(width, groups), width)


def layer_keys(keys: torch.Tensor | None, layer: int) -> torch.Tensor | None:
    """Keys for the ``layer``-th dropout of a network, from the sample keys.

    KeyedDropout's mask of unit u depends only on (key, u): two dropouts given the same keys would
    drop the same unit indices in both layers. Hashing the key with the layer number makes their
    masks independent while still a function of the sample alone.
    """
    if keys is None or layer == 0:
        return keys
    offset = layer * GOLDEN % (1 << 64)  # as int64 bits: keys + offset wraps like uint64
    return splitmix64(keys + (offset - (1 << 64) if offset >= 1 << 63 else offset))


def _conv(cin: int, cout: int, kernel: tuple[int, int], groups: int) -> list[nn.Module]:
    padding = (kernel[0] // 2, kernel[1] // 2)  # odd kernels: the image keeps its size
    return [nn.Conv2d(cin, cout, kernel, padding=padding), norm(cout, groups), nn.ReLU()]


def _features(config: AlexNetConfig) -> nn.Sequential:
    """Convolutions: the configured first kernel, then 5x5, then 3x3 (AlexNet's 11, 5, 3 scaled
    down); 2x2 max pooling (ceil mode: an odd or single row still gives one) after the first,
    second and last convolution."""
    widths = (config.in_channels,) + config.channels
    last = len(config.channels) - 1
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        kernel = config.kernel if i == 0 else (5, 5) if i == 1 else (3, 3)
        layers += _conv(cin, cout, kernel, config.groups)
        if i in (0, 1, last):
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class AlexNetStyle(nn.Module):
    def __init__(self, config: AlexNetConfig):
        super().__init__()
        self.config = config
        self.features = _features(config)
        # adaptive pooling, not a flatten of whatever is left: the head's size is the same for
        # every image geometry (an image smaller than the grid is spread over it)
        self.pool = nn.AdaptiveAvgPool2d(config.pool)
        widths = (config.channels[-1] * config.pool[0] * config.pool[1] + config.n_scalars,)
        widths += config.fc
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = KeyedDropout(config.dropout)  # no parameters: checkpoints keep their keys
        self.head = nn.Linear(config.fc[-1], config.n_classes)

    def embed(self, images: torch.Tensor, scalars: torch.Tensor,
              keys: torch.Tensor | None = None) -> torch.Tensor:
        """The penultimate representation (for t-SNE plots). ``keys``: one per sample
        (``snia.models.sample_keys``), needed in training with dropout."""
        x = torch.cat([self.pool(self.features(images)).flatten(1), scalars], dim=1)
        for i, fc in enumerate(self.fc):
            x = self.dropout(torch.relu(fc(x)), layer_keys(keys, i))
        return x

    def forward(self, images: torch.Tensor, scalars: torch.Tensor,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(images, scalars, keys))
