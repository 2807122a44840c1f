"""Building blocks shared by the paper's networks: layer -> BN -> ELU (or ReLU) [-> noise/dropout]."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """Additive N(0, std^2) noise in training mode only (the authors' D regulariser)."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x):
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x

    def extra_repr(self):
        return f"std={self.std}"


def regulariser(options, first: bool) -> nn.Module:
    if options.d_regularizer == "noise":
        return GaussianNoise(options.noise_std[0 if first else 1])
    if options.d_regularizer == "dropout":
        return nn.Dropout(options.dropout)
    return nn.Identity()


ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU}  # the paper's ELU; ReLU: the same layer, cheaper on CPU


def block(layer: nn.Module, channels: int, options, two_d: bool, extra: nn.Module | None = None,
          activation: str = "elu") -> nn.Sequential:
    """``layer`` -> BatchNorm -> ``activation`` (a key of :data:`ACTIVATIONS`) [-> ``extra``]."""
    bn = (nn.BatchNorm2d if two_d else nn.BatchNorm1d)(channels, eps=options.bn_eps, momentum=options.bn_momentum)
    parts = [layer, bn, ACTIVATIONS[activation]()]
    if extra is not None:
        parts.append(extra)
    return nn.Sequential(*parts)


def upsample(in_channels: int, out_channels: int, options) -> nn.Module:
    """Double the resolution: a 4x4 stride-2 SAME transposed conv, or resize (nearest or bilinear) then a 3x3 conv."""
    if options.g_upsampling in ("resize", "bilinear"):
        mode = "nearest" if options.g_upsampling == "resize" else "bilinear"
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), nn.Conv2d(in_channels, out_channels, 3, 1, 1))
    return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)


class CropSame(nn.Module):
    """TF 'SAME' for a stride-1 4x4 transposed conv: with padding 1, drop the last row and
    column (the same as padding 0 and cropping [1:-2, 1:-2], with less work)."""

    def forward(self, x):
        return x[:, :, :-1, :-1]


def init_code_style(module: nn.Module, style: str) -> None:
    """The authors' init for E and D: N(0, sqrt(2 / size[0])) where size[0] is the
    fan-in for dense layers and the kernel height for convolutions (their bug)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            if style == "code":
                first = m.weight.shape[-2] if m.weight.dim() == 4 else m.weight.shape[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / first))
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_generator(module: nn.Module) -> None:
    """The authors' G init: truncated N(0, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
            nn.init.zeros_(m.bias)


def init_networks(g: nn.Module, e: nn.Module, d: nn.Module, options) -> None:
    """Apply ``options.init`` to G, E and D; D's ``one_by_one`` layers (1x1 convs in the
    authors' code) get std sqrt(2) under ``code`` (their kernel height is 1); D's class
    embeddings (``d_projection``) start small under every init."""
    if options.init != "default":
        init_generator(g) if options.init in ("code", "fixed") else init_code_style(g, "he")
        init_code_style(e, "he" if options.init == "fixed" else options.init)
        init_code_style(d, "he" if options.init == "fixed" else options.init)
    if options.init == "code":
        for layer in getattr(d, "one_by_one", ()):
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0))
    if hasattr(d, "reset_projection"):
        d.reset_projection()


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Put every convolution and dense layer of ``module`` under spectral normalisation
    (``torch.nn.utils.parametrizations.spectral_norm``, one power iteration per training
    forward; Miyato et al. 2018). Applied after initialisation; returns ``module``."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            spectral_norm(m)
    return module
