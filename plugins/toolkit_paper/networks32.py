"""Table I, SVHN / CelebA column: the 32x32 generator, encoder and joint discriminator.

No code was published for this column; the choices follow the authors' MNIST code
(see networks28): VALID convolutions in E and D (E 32->30->14->12->5->2, D 32->15->6->2),
SAME transposed convolutions in G (4->8->16->32, then a 3x3 stride-1 layer), BN(eps 1e-3,
momentum 0.001) and ELU after every hidden layer, a tanh on E's u head. Assumption: D is
regularised with Gaussian noise after each layer as in the MNIST code (the paper's text says
dropout 0.3: ``d_regularizer: dropout``). Any channel count works (3 for colour).
"""

from __future__ import annotations

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.networks import Networks

from .layers import spectral_normalise, block, init_networks, regulariser, scaled, upsample


class Generator32(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.base = w(128)
        self.fc = block(nn.Linear(spec.dim, 4 * 4 * self.base), 4 * 4 * self.base, o, two_d=False)  # FC 2048
        self.deconv = nn.Sequential(
            block(upsample(self.base, w(128), o), w(128), o, two_d=True),  # 4 -> 8
            block(upsample(w(128), w(64), o), w(64), o, two_d=True),  # 8 -> 16
            block(upsample(w(64), w(32), o), w(32), o, two_d=True),  # 16 -> 32
            nn.ConvTranspose2d(w(32), channels, 3, 1, 1),  # 32, SAME
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.deconv(self.fc(z).view(len(z), self.base, 4, 4))


class Encoder32(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.u_size = spec.u_size
        self.features = nn.Sequential(
            block(nn.Conv2d(channels, w(32), 3, 1), w(32), o, two_d=True),  # 32 -> 30
            block(nn.Conv2d(w(32), w(64), 3, 2), w(64), o, two_d=True),  # 30 -> 14
            block(nn.Conv2d(w(64), w(128), 3, 1), w(128), o, two_d=True),  # 14 -> 12
            block(nn.Conv2d(w(128), w(256), 3, 2), w(256), o, two_d=True),  # 12 -> 5
            block(nn.Conv2d(w(256), w(512), 3, 2), w(512), o, two_d=True),  # 5 -> 2
            nn.Flatten(),
            block(nn.Linear(2 * 2 * w(512), w(1024)), w(1024), o, two_d=False),
        )
        self.head = nn.Linear(w(1024), spec.dim)  # u | categorical logits | continuous means

    def forward(self, x):
        raw = self.head(self.features(x))
        return torch.cat([torch.tanh(raw[:, : self.u_size]), raw[:, self.u_size :]], dim=1)


class Discriminator32(nn.Module):
    def __init__(self, spec, channels: int, o):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        self.image = nn.Sequential(
            block(nn.Conv2d(channels, w(64), 4, 2), w(64), o, True, regulariser(o, first=True)),  # 32 -> 15
            block(nn.Conv2d(w(64), w(128), 4, 2), w(128), o, True, regulariser(o, first=False)),  # 15 -> 6
            block(nn.Conv2d(w(128), w(256), 4, 2), w(256), o, True, regulariser(o, first=False)),  # 6 -> 2
            nn.Flatten(),
            block(nn.Linear(2 * 2 * w(256), w(1024)), w(1024), o, False, regulariser(o, first=False)),
        )
        # the paper's 1x1 convolutions on a 1x1 map are dense layers
        self.code = nn.Sequential(
            block(nn.Linear(spec.dim, w(64)), w(64), o, False, regulariser(o, first=True)),
            block(nn.Linear(w(64), w(128)), w(128), o, False, regulariser(o, first=False)),
            block(nn.Linear(w(128), w(256)), w(256), o, False, regulariser(o, first=False)),
            block(nn.Linear(w(256), w(1024)), w(1024), o, False, regulariser(o, first=False)),
        )
        self.joint = nn.Sequential(
            block(nn.Linear(2 * w(1024), w(1024)), w(1024), o, False, regulariser(o, first=False)),
            nn.Linear(w(1024), 1),
        )
        self.one_by_one = [self.code[i][0] for i in range(3)]  # were 1x1 convs

    def forward(self, x, z):
        return self.joint(torch.cat([self.image(x), self.code(z)], dim=1))


def build(spec, image_shape, options) -> Networks:
    channels, height, width = image_shape
    if (height, width) != (32, 32):
        raise ToolkitError(f"network 'paper32' expects 32x32 images, the data has {height}x{width}")
    g, e, d = Generator32(spec, channels, options), Encoder32(spec, channels, options), Discriminator32(spec, channels, options)
    init_networks(g, e, d, options)
    if options.d_spectral_norm:
        spectral_normalise(d)
    return Networks(g, e, d)
