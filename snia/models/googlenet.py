"""A GoogLeNet-style classifier of light-curve images: inception blocks, few parameters.

Each inception block (Szegedy et al. 2015) runs four branches side by side on the same input and
concatenates them: a 1x1 convolution, 1x1 then 3x3, 1x1 then 5x5, and 3x3 max pooling then 1x1.
A light-curve feature may be one time column wide (a single epoch) or span many (a rise and fall),
so the block looks at several scales at once and lets training weigh them; the 1x1 reductions
keep that cheap. The branch widths follow GoogLeNet's inception 3a (of 256 output channels:
64, 128, 32, 32; reductions 96 and 16). GoogLeNet's stem (7x7 stride 2 and two poolings) would
shrink a 16-row image to 4 rows before any inception block, so the stem here is one 3x3
convolution; 2x2 max pooling (ceil mode) comes between stages. GroupNorm and ReLU after every
convolution (GroupNorm, not BatchNorm: its statistics do not depend on how a global batch is split
over data-parallel ranks), then global average pooling and a small head that also sees the
per-object scalars, with dropout keyed per sample, as in ``snia.models.cnn``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from snia.errors import ConfigError
from snia.models.alexnet import norm
from snia.models.cnn import PooledCNN
from snia.models.head import ImageConfig

MIN_WIDTH = 8  # the narrowest block whose four branches each get a channel


@dataclass
class GoogLeNetConfig(ImageConfig):
    stem: int = 32  # channels of the 3x3 stem convolution
    channels: tuple[int, ...] = (64, 128, 256)  # output width of the inception blocks per stage
    blocks: int = 2  # inception blocks per stage
    groups: int = 8  # GroupNorm groups (at most; fewer where they do not divide the width)
    hidden: int = 128

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if not self.channels or min(self.channels) < MIN_WIDTH:
            raise ConfigError(f"googlenet channels must be one or more widths of at least "
                              f"{MIN_WIDTH} (four branches), not {self.channels}")
        if self.stem < 1 or self.blocks < 1:
            raise ConfigError(f"googlenet stem and blocks must be at least 1, not "
                              f"{self.stem} and {self.blocks}")


def branch_widths(width: int) -> dict[str, int]:
    """Output and reduction widths of the branches of a block of ``width`` output channels, in
    inception 3a's proportions (1x1: 1/4, 3x3: 1/2, 5x5: 1/8, pool: 1/8; reductions 3/8, 1/16)."""
    b3, b5, pool = width // 2, width // 8, width // 8
    return {"b1": width - b3 - b5 - pool, "b3": b3, "b5": b5, "pool": pool,
            "r3": max(1, 3 * width // 8), "r5": max(1, width // 16)}


def _conv(cin: int, cout: int, kernel: int, groups: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), norm(cout, groups), nn.ReLU()]


class Inception(nn.Module):
    """Four parallel branches concatenated along channels; every branch keeps the image size."""

    def __init__(self, cin: int, width: int, groups: int):
        super().__init__()
        w = branch_widths(width)
        self.b1 = nn.Sequential(*_conv(cin, w["b1"], 1, groups))
        self.b3 = nn.Sequential(*_conv(cin, w["r3"], 1, groups),
                                *_conv(w["r3"], w["b3"], 3, groups))
        self.b5 = nn.Sequential(*_conv(cin, w["r5"], 1, groups),
                                *_conv(w["r5"], w["b5"], 5, groups))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                  *_conv(cin, w["pool"], 1, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1)


def _features(config: GoogLeNetConfig) -> nn.Sequential:
    layers: list[nn.Module] = _conv(config.in_channels, config.stem, 3, config.groups)
    cin = config.stem
    for stage, width in enumerate(config.channels):
        if stage > 0:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: a single row still gives one
        for _ in range(config.blocks):
            layers.append(Inception(cin, width, config.groups))
            cin = width
    return nn.Sequential(*layers)


class GoogLeNetStyle(PooledCNN):
    def __init__(self, config: GoogLeNetConfig):
        super().__init__(config, _features(config), config.channels[-1])
