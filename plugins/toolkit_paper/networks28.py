"""Table I, MNIST column: the 28x28 generator, encoder and joint discriminator.

Follows the authors' code (``train_mnist.py``): VALID convolutions in E and D
(28->26->12->5 and 28->13->6), SAME transposed convolutions in G, BN(eps 1e-3, momentum
0.001) and ELU after every hidden layer, a tanh on E's u head, and Gaussian noise after each
D layer in training mode (the paper's text says dropout 0.3: ``d_regularizer: dropout``).
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.networks import Networks

from .layers import spectral_normalise, CropSame, block, init_networks, regulariser, scaled, upsample


class Generator28(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.base = w(64)
        self.fc = block(nn.Linear(spec.dim, 7 * 7 * self.base), 7 * 7 * self.base, o, two_d=False)
        self.deconv = nn.Sequential(
            block(upsample(self.base, w(128), o), w(128), o, two_d=True),  # 7 -> 14
            block(nn.Sequential(nn.ConvTranspose2d(w(128), w(64), 4, 1, 1), CropSame()), w(64), o, two_d=True),  # 14
            upsample(w(64), channels, o),  # 14 -> 28
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.deconv(self.fc(z).view(len(z), self.base, 7, 7))


class Encoder28(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.u_size = spec.u_size
        self.features = nn.Sequential(
            block(nn.Conv2d(channels, w(32), 3, 1), w(32), o, two_d=True),  # 28 -> 26
            block(nn.Conv2d(w(32), w(64), 3, 2), w(64), o, two_d=True),  # 26 -> 12
            block(nn.Conv2d(w(64), w(128), 3, 2), w(128), o, two_d=True),  # 12 -> 5
            nn.Flatten(),
            block(nn.Linear(5 * 5 * w(128), w(1024)), w(1024), o, two_d=False),
        )
        self.head = nn.Linear(w(1024), spec.dim)  # u | categorical logits | continuous means

    def forward(self, x):
        raw = self.head(self.features(x))
        return torch.cat([torch.tanh(raw[:, : self.u_size]), raw[:, self.u_size :]], dim=1)


class Discriminator28(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.image = nn.Sequential(
            block(nn.Conv2d(channels, w(64), 3, 2), w(64), o, True, regulariser(o, first=True)),  # 28 -> 13
            block(nn.Conv2d(w(64), w(128), 3, 2), w(128), o, True, regulariser(o, first=False)),  # 13 -> 6
            nn.Flatten(),
            block(nn.Linear(6 * 6 * w(128), w(512)), w(512), o, False, regulariser(o, first=False)),
        )
        # the paper's 1x1 convolutions on a 1x1 map are dense layers
        self.code = nn.Sequential(
            block(nn.Linear(spec.dim, w(64)), w(64), o, False, regulariser(o, first=True)),
            block(nn.Linear(w(64), w(128)), w(128), o, False, regulariser(o, first=False)),
            block(nn.Linear(w(128), w(512)), w(512), o, False, regulariser(o, first=False)),
        )
        self.joint = nn.Sequential(
            block(nn.Linear(2 * w(512), w(1024)), w(1024), o, False, regulariser(o, first=False)),
            nn.Linear(w(1024), 1),
        )
        self.one_by_one = [self.code[0][0], self.code[1][0]]  # were 1x1 convs in the code

    def forward(self, x, z):
        return self.joint(torch.cat([self.image(x), self.code(z)], dim=1))


def build(spec, image_shape, options) -> Networks:
    channels, height, width = image_shape
    if (height, width) != (28, 28):
        raise ToolkitError(f"network 'paper28' expects 28x28 images, the data has {height}x{width}")
    g, e, d = Generator28(spec, channels, options), Encoder28(spec, channels, options), Discriminator28(spec, channels, options)
    init_networks(g, e, d, options)
    if options.d_spectral_norm:
        spectral_normalise(d)
    return Networks(g, e, d)
