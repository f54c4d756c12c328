"""A ResNet-style classifier of light-curve images: residual basic blocks, depth and width settings.

Basic blocks (He et al. 2016): two 3x3 convolutions with GroupNorm, added to the block's input
(identity, or a strided 1x1 convolution with GroupNorm where the width or size changes) before the
last ReLU. The skip path lets depth be a setting without the deeper networks training worse. Each
stage has ``blocks[s]`` blocks of ``channels[s]`` channels; every stage after the first starts
with a stride-2 block (halving rows and columns, rounding up, so a single row or column survives).
The stem is one 3x3 convolution at full resolution: ResNet's 7x7 stride-2 stem and max pooling
would leave 4 of 16 rows before the first block. GroupNorm, not BatchNorm: its statistics do not
depend on how a global batch is split over data-parallel ranks. Global average pooling and a small
head that also sees the per-object scalars, with dropout keyed per sample, as in
``snia.models.cnn``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from snia.errors import ConfigError
from snia.models.alexnet import norm
from snia.models.cnn import PooledCNN
from snia.models.head import ImageConfig


@dataclass
class ResNetConfig(ImageConfig):
    stem: int = 32  # channels of the 3x3 stem convolution
    channels: tuple[int, ...] = (32, 64, 128)  # width per stage
    blocks: tuple[int, ...] = (2, 2, 2)  # depth: basic blocks per stage
    groups: int = 8  # GroupNorm groups (at most; fewer where they do not divide the width)
    hidden: int = 128

    def __post_init__(self):
        self.channels, self.blocks = tuple(self.channels), tuple(self.blocks)
        if not self.channels or min(self.channels) < 1 or self.stem < 1:
            raise ConfigError(f"resnet stem and channels must be positive widths, not "
                              f"{self.stem} and {self.channels}")
        if len(self.blocks) != len(self.channels) or min(self.blocks) < 1:
            raise ConfigError(f"resnet blocks must give one positive depth per stage of channels "
                              f"{self.channels}, not {self.blocks}")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = norm(cout, groups)
        # the residual starts at zero, so a new block is the identity and depth costs nothing at
        # the start of training (Goyal et al. 2017)
        nn.init.zeros_(self.norm2.weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:  # 1x1 stride 2 gives ceil(n / 2), as the 3x3 path does
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          norm(cout, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(y)) + self.shortcut(x))


def _features(config: ResNetConfig) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(config.in_channels, config.stem, 3, padding=1, bias=False),
                               norm(config.stem, config.groups), nn.ReLU()]
    cin = config.stem
    for stage, (width, depth) in enumerate(zip(config.channels, config.blocks)):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(cin, width, stride, config.groups))
            cin = width
    return nn.Sequential(*layers)


class ResNetStyle(PooledCNN):
    def __init__(self, config: ResNetConfig):
        super().__init__(config, _features(config), config.channels[-1])
