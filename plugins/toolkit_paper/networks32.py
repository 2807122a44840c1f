"""Table I, SVHN / CelebA column: the 32x32 generator, encoder and joint discriminator.

No code was published for this column; the choices follow the authors' MNIST code
(see networks28): VALID convolutions in E and D (E 32->30->14->12->5->2, D 32->15->6->2),
SAME transposed convolutions in G (4->8->16->32, then a 3x3 stride-1 layer), BN(eps 1e-3,
momentum 0.001) and ELU after every hidden layer, a tanh on E's u head. Assumption: D is
regularised with Gaussian noise after each layer as in the MNIST code (the paper's text says
dropout 0.3: ``d_regularizer: dropout``). Any channel count works (3 for colour).
"""

from __future__ import annotations

from torch import nn

from toolkit.errors import ToolkitError
from toolkit.networks import Networks

from .layers import block, init_networks, scaled, spectral_normalise, upsample
from .table1 import Discriminator, Encoder, Generator


def generator(spec, channels: int, o) -> Generator:
    w = lambda c: scaled(c, o.width)  # noqa: E731
    return Generator(spec, o, w(128), 4, lambda: [  # FC 2048
        block(upsample(w(128), w(128), o), w(128), o, two_d=True),  # 4 -> 8
        block(upsample(w(128), w(64), o), w(64), o, two_d=True),  # 8 -> 16
        block(upsample(w(64), w(32), o), w(32), o, two_d=True),  # 16 -> 32
        nn.ConvTranspose2d(w(32), channels, 3, 1, 1),  # 32, SAME
    ])


def encoder(spec, channels: int, o) -> Encoder:
    # 32 -> 30 -> 14 -> 12 -> 5 -> 2
    return Encoder(spec, channels, o, [(32, 3, 1), (64, 3, 2), (128, 3, 1), (256, 3, 2), (512, 3, 2)], image_side=32)


def discriminator(spec, channels: int, o) -> Discriminator:
    return Discriminator(spec, channels, o, [(64, 4, 2), (128, 4, 2), (256, 4, 2)], image_side=32,  # 32 -> 15 -> 6 -> 2
                         image_fc=1024, code_widths=[64, 128, 256, 1024])


def build(spec, image_shape, options) -> Networks:
    channels, height, width = image_shape
    if (height, width) != (32, 32):
        raise ToolkitError(f"network 'paper32' expects 32x32 images, the data has {height}x{width}")
    g, e, d = generator(spec, channels, options), encoder(spec, channels, options), discriminator(spec, channels, options)
    init_networks(g, e, d, options)
    if options.d_spectral_norm:
        spectral_normalise(d)
    return Networks(g, e, d)
