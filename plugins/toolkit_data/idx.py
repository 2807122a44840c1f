"""MNIST-format (IDX) datasets: MNIST, Fashion-MNIST, and the shipped Fashion-MNIST slice.

Files are read in place (gzipped or not) from ``<root>/<Name>/raw``; when they are missing
and ``download`` is true, torchvision downloads them there first.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from toolkit.data import ImageSet
from toolkit.errors import ToolkitError
from toolkit.recipe import expand_path

from .fetch import download

ASSETS = Path(__file__).parent / "assets"
FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ToolkitError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ToolkitError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise ToolkitError(f"{path} is truncated or corrupt: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def load_idx_pair(raw: Path, split: str, attribute: str, classes: list[str], prefix: str = "") -> ImageSet:
    images_name, labels_name = FILES[split]
    images_path, labels_path = _find(raw, prefix + images_name), _find(raw, prefix + labels_name)
    if images_path is None or labels_path is None:
        return None
    images = torch.from_numpy(read_idx(images_path).copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    if len(images) != len(labels):
        raise ToolkitError(f"{raw}: {len(images)} images but {len(labels)} labels")
    return ImageSet(images, {attribute: labels}, {attribute: list(classes)})


def _torchvision(name: str, root: Path, options, split: str, attribute: str, classes: list[str]) -> ImageSet:
    raw = root / name / "raw"
    data = load_idx_pair(raw, split, attribute, classes)
    if data is None and options.download:
        import torchvision

        download(name, root, lambda: getattr(torchvision.datasets, name)(str(root), train=split == "train", download=True))
        data = load_idx_pair(raw, split, attribute, classes)
    if data is None:
        raise ToolkitError(
            f"{name} not found under {raw} (expected {FILES[split][0]}[.gz] and {FILES[split][1]}[.gz]); "
            "point data.options.root at it, or set data.options.download=true"
        )
    return data


def _root(options) -> Path:
    return expand_path(options.root)


def load_mnist(options, split: str) -> ImageSet:
    return _torchvision("MNIST", _root(options), options, split, "digit", [str(i) for i in range(10)])


def load_fashion_mnist(options, split: str) -> ImageSet:
    return _torchvision("FashionMNIST", _root(options), options, split, "item", FASHION_CLASSES)


def load_fashion_mnist_mini(options, split: str) -> ImageSet:
    data = load_idx_pair(ASSETS, split, "item", FASHION_CLASSES, prefix="fashion-mini-")
    if data is None:
        raise ToolkitError(f"the shipped Fashion-MNIST slice is missing from {ASSETS}; reinstall the toolkit")
    return data
