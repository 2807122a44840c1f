"""Dataset ``shapes``: procedurally drawn 28x28 grey circles, squares and triangles.

Attributes ``shape`` (circle, square, triangle) and ``size`` (small, large), balanced. In the
training split a share of each attribute's labels is missing (``-1``), chosen independently
per attribute, so recipes show partial labels; the test split is fully labeled.
"""

from __future__ import annotations

import math

import torch

from toolkit.data import MISSING, ImageSet
from toolkit.errors import ToolkitError

SHAPES = ["circle", "square", "triangle"]
SIZES = ["small", "large"]
SIDE = 28


def render(shape: torch.Tensor, size: torch.Tensor, generator: torch.Generator, jitter: float = 3.0) -> torch.Tensor:
    """Float images ``(N, 1, 28, 28)`` in [0, 1]: one anti-aliased shape each.

    The centre is up to ``jitter`` pixels from the image centre (kept inside the image);
    radius (small 4-5.5, large 8-10) and brightness vary.
    """
    n = len(shape)
    rand = lambda: torch.rand(n, generator=generator)[:, None, None]  # noqa: E731
    r = torch.where(size[:, None, None] == 0, 4.0 + 1.5 * rand(), 8.0 + 2.0 * rand())
    centre = lambda: torch.minimum(torch.maximum(SIDE / 2 + (2 * rand() - 1) * jitter, r + 1), SIDE - 1 - r)  # noqa: E731
    cx, cy = centre(), centre()
    grid = torch.arange(SIDE, dtype=torch.float32) + 0.5
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy  # (N, 1, W), (N, H, 1)
    circle = (dx.square() + dy.square()).sqrt() - r
    square = torch.maximum(dx.abs(), dy.abs()) - 0.85 * r
    base = 0.7 * r  # triangle: apex at (0, -r), base from (-r, base) to (r, base)
    slant = (dx.abs() * (base + r) - r * (dy + r)) / ((base + r).square() + r.square()).sqrt()
    triangle = torch.maximum(dy - base, slant)
    index = shape[:, None, None]
    distance = torch.where(index == 0, circle, torch.where(index == 1, square, triangle))
    brightness = 0.7 + 0.3 * rand()
    return ((0.5 - distance).clamp(0, 1) * brightness)[:, None]


def make(n: int, seed: int, unlabeled: float = 0.0, jitter: float = 3.0) -> ImageSet:
    """``n`` balanced images; a share ``unlabeled`` of each attribute's labels set to -1."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    shape = (torch.arange(n) % len(SHAPES))[order]
    size = (torch.arange(n) // len(SHAPES) % len(SIZES))[order]
    images = (render(shape, size, g, jitter) * 255).round().to(torch.uint8)
    labels = {"shape": shape, "size": size}
    hidden = math.floor(unlabeled * n)
    for name in labels:
        rows = torch.randperm(n, generator=g)[:hidden]
        labels[name] = labels[name].clone()
        labels[name][rows] = MISSING
    return ImageSet(images, labels, {"shape": list(SHAPES), "size": list(SIZES)})


def load(options, split: str) -> ImageSet:
    """The dataset factory: ``train`` or ``test``, both from ``options.seed``."""
    if split == "train":
        return make(options.train_size, 2 * options.seed, options.unlabeled, options.jitter)
    if split == "test":
        return make(options.test_size, 2 * options.seed + 1, 0.0, options.jitter)
    raise ToolkitError(f"dataset 'shapes' has the splits train and test, not '{split}'")
