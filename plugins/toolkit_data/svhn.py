"""SVHN cropped digits (format 2): ``<root>/train_32x32.mat`` and ``test_32x32.mat``.

The files are read in place with scipy, as torchvision's ``SVHN`` reads them: ``X`` is
``(32, 32, 3, N)`` uint8, ``y`` is ``(N, 1)`` with 10 meaning the digit 0 (mapped to 0, as
torchvision does). When a file is missing and ``download`` is true, torchvision's ``SVHN``
downloads it first (and checks its MD5). The ``extra`` split is not used (nor was it by the
paper's SVHN classifier).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.data import ImageSet
from toolkit.errors import ToolkitError
from toolkit.recipe import expand_path

from .fetch import download

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
CLASSES = [str(i) for i in range(10)]


def _scipy_io():
    try:
        import scipy.io
    except ImportError:
        raise ToolkitError("the SVHN dataset needs scipy to read its .mat files: pip install scipy") from None
    return scipy.io


def read_mat(path: Path) -> ImageSet:
    """One SVHN .mat file as images ``(N, 3, 32, 32)`` and attribute ``digit``."""
    sio = _scipy_io()
    try:
        mat = sio.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, NotImplementedError, sio.matlab.MatReadError) as exc:
        raise ToolkitError(f"cannot read SVHN file {path}: {exc}") from None
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8 or y.size != x.shape[3]:
        raise ToolkitError(f"{path}: expected X (32, 32, 3, N) uint8 and y (N, 1), got X {x.shape} {x.dtype}, y {y.shape}")
    labels = y.astype(np.int64).reshape(-1)
    if ((labels < 0) | (labels > 10)).any():
        raise ToolkitError(f"{path}: labels must be 0-10 (10 is the digit 0)")
    labels[labels == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))))
    return ImageSet(images, {"digit": torch.from_numpy(labels)}, {"digit": list(CLASSES)})


def load(options, split: str) -> ImageSet:
    """The ``split`` ('train' or 'test') of SVHN under ``options.root``."""
    if split not in FILES:
        raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
    root = expand_path(options.root)
    path = root / FILES[split]
    _scipy_io()
    if not path.is_file() and options.download:
        import torchvision

        download("SVHN", root, lambda: torchvision.datasets.SVHN(str(root), split=split, download=True))
    if not path.is_file():
        raise ToolkitError(
            f"SVHN not found: expected {path}; point data.options.root at it, or set data.options.download=true"
        )
    return read_mat(path)
