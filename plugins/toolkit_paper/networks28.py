"""Table I, MNIST column: the 28x28 generator, encoder and joint discriminator.

Follows the authors' code (``train_mnist.py``): VALID convolutions in E and D
(28->26->12->5 and 28->13->6), SAME transposed convolutions in G, BN(eps 1e-3, momentum
0.001) and ELU after every hidden layer, a tanh on E's u head, and Gaussian noise after each
D layer in training mode (the paper's text says dropout 0.3: ``d_regularizer: dropout``).
"""

from __future__ import annotations

from torch import nn

from toolkit.errors import ToolkitError
from toolkit.networks import Networks

from .layers import CropSame, block, init_networks, scaled, spectral_normalise, upsample
from .table1 import Discriminator, Encoder, Generator


def generator(spec, channels: int, o) -> Generator:
    w = lambda c: scaled(c, o.width)  # noqa: E731
    return Generator(spec, o, w(64), 7, lambda: [
        block(upsample(w(64), w(128), o), w(128), o, two_d=True),  # 7 -> 14
        block(nn.Sequential(nn.ConvTranspose2d(w(128), w(64), 4, 1, 1), CropSame()), w(64), o, two_d=True),  # 14
        upsample(w(64), channels, o),  # 14 -> 28
    ])


def encoder(spec, channels: int, o) -> Encoder:
    return Encoder(spec, channels, o, [(32, 3, 1), (64, 3, 2), (128, 3, 2)], image_side=28)  # 28 -> 26 -> 12 -> 5


def discriminator(spec, channels: int, o) -> Discriminator:
    return Discriminator(spec, channels, o, [(64, 3, 2), (128, 3, 2)], image_side=28,  # 28 -> 13 -> 6
                         image_fc=512, code_widths=[64, 128, 512])


def build(spec, image_shape, options) -> Networks:
    channels, height, width = image_shape
    if (height, width) != (28, 28):
        raise ToolkitError(f"network 'paper28' expects 28x28 images, the data has {height}x{width}")
    g, e, d = generator(spec, channels, options), encoder(spec, channels, options), discriminator(spec, channels, options)
    init_networks(g, e, d, options)
    if options.d_spectral_norm:
        spectral_normalise(d)
    return Networks(g, e, d)
