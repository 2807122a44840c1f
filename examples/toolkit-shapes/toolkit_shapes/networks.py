"""Network family ``mlp28``: fully connected G, E and D for 28x28 images.

- G: Z ``(B, dim)`` -> images ``(B, C, 28, 28)`` in [0, 1] (a sigmoid at the end).
- E: images -> raw code ``(B, dim)``: a tanh on the u part, logits and means as they are.
- D: (images, Z) -> ``(B, 1)`` logits, from the image and the code side by side.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.networks import Networks


def mlp(sizes: list[int], dropout: float = 0.0, batchnorm: bool = False) -> nn.Sequential:
    """Linear layers with (BatchNorm,) LeakyReLU (and dropout) between them, none after the last."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.LeakyReLU(0.2))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    def __init__(self, dim: int, image_shape, o):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = mlp([dim] + [o.hidden] * o.layers + [math.prod(image_shape)], batchnorm=o.batchnorm)

    def forward(self, z):
        return torch.sigmoid(self.net(z)).view(len(z), *self.image_shape)


class Encoder(nn.Module):
    def __init__(self, dim: int, u_size: int, image_shape, o):
        super().__init__()
        self.u_size = u_size
        self.net = mlp([math.prod(image_shape)] + [o.hidden] * o.layers + [dim])

    def forward(self, x):
        raw = self.net(x.flatten(1))
        return torch.cat([torch.tanh(raw[:, : self.u_size]), raw[:, self.u_size :]], dim=1)


class Discriminator(nn.Module):
    def __init__(self, dim: int, image_shape, o):
        super().__init__()
        self.net = mlp([math.prod(image_shape) + dim] + [o.hidden] * o.layers + [1], dropout=o.dropout)

    def forward(self, x, z):
        return self.net(torch.cat([x.flatten(1), z], dim=1))


def build(spec, image_shape, options) -> Networks:
    """The factory: ``(spec, (C, H, W), Mlp28Options) -> Networks``."""
    _, height, width = image_shape
    if (height, width) != (28, 28):
        raise ToolkitError(f"network 'mlp28' expects 28x28 images, the data has {height}x{width}")
    return Networks(
        Generator(spec.dim, image_shape, options),
        Encoder(spec.dim, spec.u_size, image_shape, options),
        Discriminator(spec.dim, image_shape, options),
    )
