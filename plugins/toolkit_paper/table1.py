"""The three networks of Table I, parametrised by column (``networks28``, ``networks32``).

Every column has the same structure, after the authors' MNIST code: layers of
layer -> BN -> ELU (:func:`~toolkit_paper.layers.block`); E and D use VALID convolutions, G
SAME transposed convolutions (options not in the paper: E with max pooling and ReLU,
``e_downsampling`` / ``e_activation``); E ends in one dense head (a tanh on u); D judges the image and
the code on separate paths, then jointly. A column gives its layer sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .layers import block, regulariser, scaled


class Generator(nn.Module):
    """Z -> FC to a ``(base, side, side)`` map -> the column's layers -> sigmoid."""

    def __init__(self, spec, o, base: int, side: int, layers: Callable[[], list[nn.Module]]):
        super().__init__()
        self.base, self.side = base, side
        self.fc = block(nn.Linear(spec.dim, side * side * base), side * side * base, o, two_d=False)
        self.deconv = nn.Sequential(*layers(), nn.Sigmoid())

    def forward(self, z):
        return self.deconv(self.fc(z).view(len(z), self.base, self.side, self.side))


def _convs(channels: int, convs, o, width: float, side: int, extra=None, activation: str = "elu",
           pooled: bool = False) -> tuple[list[nn.Module], int, int]:
    """``convs``: ``(out_channels, kernel, stride)`` per VALID convolution (widths scaled by ``width``)
    on a ``side`` x ``side`` input. ``pooled`` (E's ``e_downsampling: maxpool``): every convolution
    SAME and stride 1, a stride-2 one preceded by 2x2 max pooling. Returns the layers, the last
    layer's channels and the side of its map."""
    layers, cin = [], channels
    for i, (cout, kernel, stride) in enumerate(convs):
        cout = scaled(cout, width)
        if pooled:
            if stride not in (1, 2) or kernel % 2 == 0:
                raise ValueError(f"e_downsampling: maxpool takes odd kernels with strides 1 and 2, not "
                                 f"{kernel}x{kernel} stride {stride}")
            if stride == 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride)
            side = (side - kernel) // stride + 1
        layers.append(block(conv, cout, o, True, extra(i == 0) if extra else None, activation=activation))
        cin = cout
    return layers, cin, side


class Encoder(nn.Module):
    """Images -> convolutions -> FC 1024 -> raw code: u (tanh) | categorical logits | continuous means.

    Channel widths scale by ``o.e_width``, or by ``o.width`` when that is not set. ``image_side``:
    the input's height and width. With ``o.e_downsampling == "maxpool"`` (not in the paper) the
    convolutions are SAME and stride 1, 2x2 max pooling halving the map where the paper strides,
    and ``o.e_activation`` replaces ELU in E."""

    def __init__(self, spec, channels: int, o, convs, image_side: int):
        super().__init__()
        width = o.width if o.e_width is None else o.e_width
        w = lambda c: scaled(c, width)  # noqa: E731
        self.u_size = spec.u_size
        layers, cin, side = _convs(channels, convs, o, width, image_side, activation=o.e_activation,
                                   pooled=o.e_downsampling == "maxpool")
        self.features = nn.Sequential(
            *layers,
            nn.Flatten(),
            block(nn.Linear(side * side * cin, w(1024)), w(1024), o, two_d=False, activation=o.e_activation),
        )
        self.head = nn.Linear(w(1024), spec.dim)

    def forward(self, x):
        raw = self.head(self.features(x))
        return torch.cat([torch.tanh(raw[:, : self.u_size]), raw[:, self.u_size :]], dim=1)


class Discriminator(nn.Module):
    """(images, Z) -> one logit: an image path (convolutions, FC ``image_fc``), a code path (dense
    layers ``code_widths``: the paper's 1x1 convolutions on a 1x1 map) and a joint FC 1024.
    Every layer is followed by the regulariser (noise or dropout).

    With ``o.d_projection`` (not in the paper) the logit also gets, for each categorical
    variable, the inner product of its code with a learnt embedding of the image features
    (``<W c, h(x)>``, the projection discriminator of Miyato & Koyama 2018): D scores how well
    the image fits its class directly, not only through the joint layers. ``W`` starts small (N(0, 0.02^2)),
    so D starts close to the paper's."""

    def __init__(self, spec, channels: int, o, convs, image_side: int, image_fc: int, code_widths: list[int]):
        super().__init__()
        w = lambda c: scaled(c, o.width)  # noqa: E731
        noise = lambda first: regulariser(o, first=first)  # noqa: E731
        layers, cin, side = _convs(channels, convs, o, o.width, image_side, noise)
        self.image = nn.Sequential(
            *layers,
            nn.Flatten(),
            block(nn.Linear(side * side * cin, w(image_fc)), w(image_fc), o, False, noise(False)),
        )
        code, width = [], spec.dim
        for i, cout in enumerate(code_widths):
            code.append(block(nn.Linear(width, w(cout)), w(cout), o, False, noise(i == 0)))
            width = w(cout)
        self.code = nn.Sequential(*code)
        self.joint = nn.Sequential(
            block(nn.Linear(w(image_fc) + width, w(1024)), w(1024), o, False, noise(False)),
            nn.Linear(w(1024), 1),
        )
        self.one_by_one = [layer[0] for layer in self.code[:-1]]  # were 1x1 convs in the code
        self.projected = {v.name: spec.slices[v.name] for v in spec.categorical} if o.d_projection else {}
        self.projection = nn.ModuleDict(
            {name: nn.Linear(s.stop - s.start, w(image_fc), bias=False) for name, s in self.projected.items()}
        )

    def reset_projection(self) -> None:
        """Small class embeddings, N(0, 0.02^2): D starts close to the paper's (called after
        initialisation; not zero, which spectral normalisation would divide by)."""
        for layer in self.projection.values():
            nn.init.normal_(layer.weight, 0.0, 0.02)

    def forward(self, x, z):
        h = self.image(x)
        logit = self.joint(torch.cat([h, self.code(z)], dim=1))
        for name, s in self.projected.items():
            logit = logit + (self.projection[name](z[:, s]) * h).sum(1, keepdim=True)
        return logit
