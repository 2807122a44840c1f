"""Your own images: a folder, plus an optional CSV of (partial) labels.

Layout::

    folder/                     every image file below it, searched recursively
        cats/001.png
        dogs/002.jpg
        extra.webp

    labels.csv                  optional, anywhere; paths are relative to the folder
        file,species,colour
        cats/001.png,cat,black
        dogs/002.jpg,dog,       <- empty cell: no 'colour' label

Images are the files with an extension in :data:`EXTENSIONS` (any case), sorted by their
path relative to the folder. Each CSV column but ``file`` is an attribute whose classes
are its sorted distinct non-empty values, taken over the whole CSV so that both splits
share them; images the CSV does not name have no labels. The test split is the first
``round(N * test_fraction)`` images of a random permutation drawn from ``split_seed``.
Images are converted as described in :mod:`toolkit.images` and kept as uint8.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import torch

from toolkit.data import MISSING, ImageSet
from toolkit.errors import ToolkitError
from toolkit.images import load_image
from toolkit.recipe import expand_path

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "test")


def find_images(folder: Path) -> list[str]:
    """Paths (posix, relative to ``folder``) of the image files below it, sorted."""
    if not folder.exists():
        raise ToolkitError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise ToolkitError(f"image folder {folder} is not a folder")
    names = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
    )
    if not names:
        raise ToolkitError(f"no images found under {folder} (looked for {', '.join(EXTENSIONS)}, any case)")
    return names


def read_labels(path: Path, folder: Path, names: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Labels (-1 = none) of ``names`` and class names per attribute, from the CSV at ``path``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ToolkitError(f"cannot read labels CSV {path}: {exc}") from None
    if not rows:
        raise ToolkitError(f"labels CSV {path} is empty (expected a header with a 'file' column)")
    header = [c.strip() for c in rows[0][1]]
    if "file" not in header:
        raise ToolkitError(f"labels CSV {path} has no 'file' column (columns found: {', '.join(header)})")
    if "" in header or len(set(header)) != len(header):
        raise ToolkitError(f"labels CSV {path}: every column needs a distinct, non-empty name (found: {', '.join(header)})")
    attributes = [c for c in header if c != "file"]
    index = {name: i for i, name in enumerate(names)}
    values: dict[str, dict[int, str]] = {a: {} for a in attributes}
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise ToolkitError(f"{path}, line {line}: {len(row)} cells but the header has {len(header)} columns")
        cells = dict(zip(header, [c.strip() for c in row] + [""] * (len(header) - len(row))))
        name = PurePosixPath(cells["file"]).as_posix()
        if name in seen:
            raise ToolkitError(f"{path}, line {line}: '{name}' is listed twice (also on line {seen[name]})")
        seen[name] = line
        if name not in index:
            why = "is not an image file" if (folder / name).is_file() else "does not exist"
            raise ToolkitError(f"{path}, line {line}: file '{name}' {why} under {folder}")
        for a in attributes:
            if cells[a]:
                values[a][index[name]] = cells[a]
    labels, classes = {}, {}
    for a in attributes:
        classes[a] = sorted(set(values[a].values()))
        position = {c: k for k, c in enumerate(classes[a])}
        labels[a] = torch.full((len(names),), MISSING, dtype=torch.int64)
        for i, value in values[a].items():
            labels[a][i] = position[value]
    return labels, classes


def split_indices(n: int, test_fraction: float, seed: int, split: str) -> torch.Tensor:
    """Sorted indices of ``split``: the test split is the head of a seeded permutation."""
    n_test = round(n * test_fraction)
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return (perm[:n_test] if split == "test" else perm[n_test:]).sort().values


def load(options, split: str) -> ImageSet:
    """The ``split`` ('train' or 'test') of the image folder described by ``options``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = expand_path(options.folder)
    names = find_images(folder)
    labels, classes = {}, {}
    if options.labels_csv is not None:
        labels, classes = read_labels(expand_path(options.labels_csv), folder, names)
    rows = split_indices(len(names), options.test_fraction, options.split_seed, split)
    size, channels = options.image_size, options.channels
    images = torch.empty((len(rows), channels, size, size), dtype=torch.uint8)
    for j, i in enumerate(rows.tolist()):
        images[j] = (load_image(folder / names[i], channels, size) * 255).round().to(torch.uint8)
    return ImageSet(images, {a: lab[rows] for a, lab in labels.items()}, classes)
