"""``cnn28``: a compact, accurate CNN for 28x28 images, used to judge generated images.

Two blocks of two 3x3 convolutions (32 then 64 channels, each BN + ReLU) with a 2x2 max-pool
after each block, then dropout, FC 256 (BN + ReLU), dropout and the class logits. Sized to
reach >= 99.3% on MNIST (>= 92% on Fashion-MNIST) in 6-8 epochs with light augmentation
(shifts of up to 2 px) and Adam + cosine decay, as :func:`toolkit.classifier.train_classifier`
trains it.
"""

from __future__ import annotations

from torch import nn

from .layers import scaled


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Cnn28(nn.Module):
    """Images ``(B, C, H, W)`` in [0, 1] -> logits ``(B, num_classes)``."""

    def __init__(self, image_shape, num_classes: int, o):
        super().__init__()
        c, h, w = image_shape
        a, b, fc = scaled(32, o.width), scaled(64, o.width), scaled(256, o.width)
        self.features = nn.Sequential(
            _conv(c, a), _conv(a, a), nn.MaxPool2d(2),  # 28 -> 14
            _conv(a, b), _conv(b, b), nn.MaxPool2d(2),  # 14 -> 7
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(o.dropout),
            nn.Linear(b * (h // 4) * (w // 4), fc, bias=False),
            nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
            nn.Dropout(o.dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x * 2 - 1))


def build(image_shape, num_classes: int, options) -> Cnn28:
    from toolkit.errors import ToolkitError

    _, h, w = image_shape
    if h < 4 or w < 4:
        raise ToolkitError(f"classifier 'cnn28' needs images of at least 4x4 pixels, got {h}x{w}")
    return Cnn28(tuple(image_shape), num_classes, options)
