"""A PELICAN-style convolutional classifier of light-curve images.

Conv blocks (two 3x3 convolutions with GroupNorm and ReLU, then 2x2 max pooling), global average
pooling, and a small head that also sees per-object scalars (host photo-z, its error, log10 of the
flux scale the image was divided by). GroupNorm, not BatchNorm: its statistics do not depend on how
a global batch is split over data-parallel ranks; and dropout keyed per sample (``KeyedDropout``),
not drawn from each rank's RNG: so N ranks train exactly like one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from snia.models.dropout import KeyedDropout
from snia.models.head import ImageConfig


@dataclass
class CNNConfig(ImageConfig):
    """The network the workflow ships (its defaults): small enough to classify thousands of light
    curves per second on 2 CPU cores."""

    channels: tuple[int, ...] = (8, 16, 32)
    groups: int = 4  # GroupNorm groups per block
    hidden: int = 64

    def __post_init__(self):
        self.channels = tuple(self.channels)  # a list from JSON or YAML


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(groups, cout), cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(min(groups, cout), cout), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class PooledCNN(nn.Module):
    """Convolutional features, global average pooling, and a head that also sees the per-object
    scalars: the frame of the CNN, GoogLeNet- and ResNet-style models (their ``features`` differ).
    The attribute names are those of the shipped CNN's checkpoints."""

    def __init__(self, config, features: nn.Module, width: int):
        super().__init__()
        self.config = config
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Sequential(nn.Linear(width + config.n_scalars, config.hidden), nn.ReLU())
        self.dropout = KeyedDropout(config.dropout)  # no parameters: checkpoints keep their keys
        self.head = nn.Linear(config.hidden, config.n_classes)

    def embed(self, images: torch.Tensor, scalars: torch.Tensor,
              keys: torch.Tensor | None = None) -> torch.Tensor:
        """The penultimate representation (for t-SNE plots). ``keys``: one per sample
        (``snia.models.sample_keys``), needed in training with dropout."""
        x = self.pool(self.features(images)).flatten(1)
        return self.dropout(self.embedding(torch.cat([x, scalars], dim=1)), keys)

    def forward(self, images: torch.Tensor, scalars: torch.Tensor,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(images, scalars, keys))


class LightCurveCNN(PooledCNN):
    def __init__(self, config: CNNConfig):
        widths = (config.in_channels,) + tuple(config.channels)
        super().__init__(config, nn.Sequential(*(_block(a, b, config.groups)
                                                 for a, b in zip(widths[:-1], widths[1:]))),
                         widths[-1])
