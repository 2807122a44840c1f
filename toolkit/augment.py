"""Per-image random augmentation of image batches, on the batch's device, differentiable.

Three users in the method: DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training") transforms every image D sees, real and generated, so gradients
reach G through the transform; FixMatch-style consistency (Sohn et al. 2020) compares E on a
weakly and a strongly augmented view of the same unlabeled image; the information loss's
``augment`` option shows E generated images through a transform, so that G must draw a code
where a classifier of real images can see it.

Every operation draws its own parameters per image in one batched call (no Python loop over
images). Images are ``(B, C, H, W)`` floats in [0, 1]; results stay in [0, 1] (translation and
cutout fill with 0, the background of the built-in data sets; colour changes are clamped).
The operations follow DiffAugment's reference code (translation by up to 1/8 of the size,
cutout of a square half the size, brightness/saturation/contrast jitter), with strengths as
arguments; ``blur`` (Gaussian, sigma up to 1 px) and ``noise`` (Gaussian, std up to 0.05) are
for what E reads of generated images (the information loss's ``augment`` option): they hide
pixel-level codes that a generator and an encoder can agree on without a judge seeing them.
``affine`` (rotation, shear and scale about the centre, as RandAugment's geometric operations) is
for views of handwriting and clothes whose class does not change with a slant.
torchvision.transforms.v2 and kornia were measured for this (benchmarks/RESULTS.md): v2 draws
one set of parameters per call (per batch, not per image) and kornia took about 40x the time of these ops on a 64-image 28x28 batch on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch
import torch.nn.functional as F

from .recipe import Augmentation

OPERATIONS: tuple[str, ...] = get_args(Augmentation)  # the names recipes may write


def _uniform(x: torch.Tensor, low: float, high: float, generator=None) -> torch.Tensor:
    u = torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device if generator is None else generator.device)
    return (low + (high - low) * u).to(x.device, x.dtype)


def _offsets(x: torch.Tensor, low: int, high: int, generator=None) -> torch.Tensor:
    """One integer in [low, high) per image, shaped ``(B, 1, 1)``, on the images' device."""
    dev = generator.device if generator is not None else x.device
    return torch.randint(low, high, (len(x), 1, 1), generator=generator, device=dev).to(x.device)


def translation(x: torch.Tensor, ratio: float = 0.125, generator=None) -> torch.Tensor:
    """Shift each image by its own integer (dy, dx), each in [-ratio*size, ratio*size]; zero-filled."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    dy, dx = _offsets(x, -sy, sy + 1, generator), _offsets(x, -sx, sx + 1, generator)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy + sy).expand(b, h, w)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx + sx).expand(b, h, w)
    padded = F.pad(x, (sx, sx, sy, sy))
    flat = (rows * (w + 2 * sx) + cols).flatten(1)  # (B, H*W) positions in the padded image
    out = padded.flatten(2).gather(2, flat[:, None, :].expand(-1, x.shape[1], -1))
    return out.view_as(x)


def cutout(x: torch.Tensor, ratio: float = 0.5, generator=None) -> torch.Tensor:
    """Zero a square of ``ratio`` x the size at a random centre of each image (it may overlap the edge)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    cy, cx = _offsets(x, 0, h + (1 - ch % 2), generator), _offsets(x, 0, w + (1 - cw % 2), generator)
    ys = torch.arange(h, device=x.device)[None, :, None] - cy + ch // 2
    xs = torch.arange(w, device=x.device)[None, None, :] - cx + cw // 2
    inside = (ys >= 0) & (ys < ch) & (xs >= 0) & (xs < cw)
    return x * (~inside)[:, None].to(x.dtype)


def brightness(x: torch.Tensor, strength: float = 0.5, generator=None) -> torch.Tensor:
    """Add a per-image offset in [-strength/2, strength/2]."""
    return (x + _uniform(x, -strength / 2, strength / 2, generator)).clamp(0, 1)


def contrast(x: torch.Tensor, strength: float = 0.5, generator=None) -> torch.Tensor:
    """Scale each image's deviation from its mean by a factor in [1 - strength, 1 + strength]."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * _uniform(x, 1 - strength, 1 + strength, generator) + mean).clamp(0, 1)


def saturation(x: torch.Tensor, strength: float = 1.0, generator=None) -> torch.Tensor:
    """Scale each pixel's deviation from its grey value by a factor in [1 - strength, 1 + strength]
    (a no-op on one-channel images)."""
    if x.shape[1] == 1:
        return x
    mean = x.mean(dim=1, keepdim=True)
    return ((x - mean) * _uniform(x, 1 - strength, 1 + strength, generator) + mean).clamp(0, 1)


def flip(x: torch.Tensor, probability: float = 0.5, generator=None) -> torch.Tensor:
    """Mirror each image left-right with ``probability`` (only for data whose classes allow it)."""
    mask = _uniform(x, 0, 1, generator) < probability
    return torch.where(mask, x.flip(3), x)


def blur(x: torch.Tensor, sigma: float = 1.0, generator=None) -> torch.Tensor:
    """Gaussian blur with each image's own standard deviation, uniform in [0, sigma] pixels.

    One separable convolution for the whole batch (a grouped convolution with one kernel per
    image); the kernel spans 2 * ceil(2 * sigma) + 1 pixels, borders are reflected. Removes
    pixel-level patterns (a high-frequency colour speckle) while keeping shapes and colours.
    """
    if sigma <= 0:
        return x
    b, c, h, w = x.shape
    radius = min(math.ceil(2 * sigma), (min(h, w) - 1))
    sigmas = _uniform(x, 0, sigma, generator).view(b, 1).clamp(min=1e-3)  # (B, 1): 1e-3 px is the identity
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigmas) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K): per image, per channel
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=b * c)
    return flat.view(b, c, h, w)


def noise(x: torch.Tensor, std: float = 0.05, generator=None) -> torch.Tensor:
    """Add Gaussian noise with each image's own standard deviation, uniform in [0, std]; clamped to [0, 1]."""
    dev = generator.device if generator is not None else x.device
    n = torch.randn(x.shape, generator=generator, device=dev).to(x.device, x.dtype)
    return (x + n * _uniform(x, 0, std, generator)).clamp(0, 1)


def affine(x: torch.Tensor, extent: float = 1.0, generator=None) -> torch.Tensor:
    """Rotate, shear and scale each image about its centre with its own draws; zero-filled, bilinear.

    At ``extent`` 1: rotation uniform in [-15, 15] degrees, horizontal shear factor in [-0.25, 0.25],
    scale in [0.9, 1.1]: RandAugment's geometric operations in a narrower range than its (30
    degrees, shear 0.3), so that a digit or an item keeps its class. One ``affine_grid`` and
    ``grid_sample`` for the whole batch; differentiable with respect to ``x``.
    """
    if extent <= 0:
        return x
    angle = _uniform(x, -extent, extent, generator).flatten() * math.radians(15.0)
    shear = _uniform(x, -extent, extent, generator).flatten() * 0.25
    scale = 1.0 + _uniform(x, -extent, extent, generator).flatten() * 0.1
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    # output -> input coordinates: (rotation . shear) / scale, no shift
    theta = torch.stack([torch.stack([cos, cos * shear - sin, zero], 1),
                         torch.stack([sin, sin * shear + cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


_OPS = {"translation": translation, "cutout": cutout, "brightness": brightness, "contrast": contrast,
        "saturation": saturation, "flip": flip, "blur": blur, "noise": noise, "affine": affine}
# each operation's extent at strength 1 (flip's probability stays 0.5 at any strength)
_EXTENT = {"translation": 0.125, "cutout": 0.5, "brightness": 0.5, "contrast": 0.5, "saturation": 1.0,
           "blur": 1.0, "noise": 0.05, "affine": 1.0}


def augment(x: torch.Tensor, policy: Sequence[str], strength: float = 1.0, generator=None) -> torch.Tensor:
    """Apply ``policy`` (names from :data:`OPERATIONS`, in order) to each image with its own draws.

    ``strength`` scales every operation's default extent (1: DiffAugment's); 0 returns ``x``.

    Raises:
        ValueError: an unknown operation name (the recipe's option types refuse these earlier).
    """
    if strength <= 0:
        return x
    for name in policy:
        if name not in _OPS:
            raise ValueError(f"unknown augmentation '{name}': use {', '.join(OPERATIONS)}")
        if name == "flip":
            x = flip(x, 0.5, generator)
        else:
            x = _OPS[name](x, _EXTENT[name] * strength, generator)
    return x
