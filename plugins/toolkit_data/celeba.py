"""CelebA, read from its own layout (the folder torchvision's ``CelebA`` downloads to)::

    root/
        list_attr_celeba.txt        line 1: count; line 2: the 40 names; then "file v1 ... v40"
        list_eval_partition.txt     optional: "file 0|1|2" (train / validation / test)
        img_align_celeba/           the aligned 178x218 JPEGs (or img_align_celeba_89x109/,
                                    or the folder named by the ``images`` option)

Every attribute becomes a 2-class label ``no`` / ``yes`` (1 -> yes, -1 -> no, 0 -> none).
Splits: partitions 0 (train) and 2 (test) when the partition file has test rows; otherwise
the test split is a ``test_fraction`` share of all listed images drawn from ``split_seed``.
``max_images`` keeps the first images of the split.

Crop: a square of ``crop`` x the image width, centred horizontally and at ``crop_center`` x
the height, resized (bilinear, antialiased) to ``image_size``. The default, 0.8 of the width
centred at half the height, keeps the whole head with its hair and a little background, as
in the paper's 32x32 figures: in the aligned images the eyes sit at about 0.5 of the height,
the chin at about 0.8 and the top of the hair at about 0.15-0.2, so this square (0.17-0.83
of the height) keeps the crown, which bald / hair colour need, and the chin.

Decoded images are cached as an .npz under ``cache`` (default ``~/.cache/toolkit/celeba``), so
the second load is fast. The key covers what the cache holds: the options that change the
pixels, the attribute and partition files, and every image file's name, size and modification
time, so replaced or touched images are decoded again; an older file of the same settings is
then removed. ``cache: null`` bypasses the cache; deleting the folder clears it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from toolkit.data import ImageSet
from toolkit.errors import ImageError, ToolkitError
from toolkit.images import atomic_write, open_image
from toolkit.recipe import expand_path

from .folder import split_indices

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_FOLDERS = ("img_align_celeba", "img_align_celeba_89x109")
SPLITS = ("train", "test")
CLASSES = ["no", "yes"]
CACHE_VERSION = 1


def _path(text: str) -> Path:
    return expand_path(text)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank lines of ``path`` (LF or CRLF)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolkitError(f"cannot read {path}: {exc}") from None
    return [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """File names, attribute names and labels ``(N, A)`` (1 yes, 0 no, -1 none) of ``path``."""
    lines = _lines(path)
    if len(lines) < 2 or len(lines[0][1]) != 1 or not lines[0][1][0].isdigit():
        raise ToolkitError(f"{path} is not a CelebA attribute file (expected a count, then the attribute names)")
    names = lines[1][1]
    files, values = [], []
    for number, fields in lines[2:]:
        if len(fields) != len(names) + 1:
            raise ToolkitError(f"{path}, line {number}: {len(fields) - 1} values, expected {len(names)}")
        files.append(fields[0])
        values.append(fields[1:])
    if int(lines[0][1][0]) != len(files):
        raise ToolkitError(f"{path}: line 1 says {lines[0][1][0]} images, the file lists {len(files)}")
    try:
        raw = np.array(values, dtype=np.str_).astype(np.int64).reshape(len(files), len(names))
    except ValueError:
        raise ToolkitError(f"{path}: attribute values must be -1, 0 or 1") from None
    if not np.isin(raw, (-1, 0, 1)).all():
        raise ToolkitError(f"{path}: attribute values must be -1, 0 or 1")
    labels = np.select([raw == 1, raw == -1], [1, 0], -1)
    return files, names, labels


def read_partition(path: Path, files: list[str]) -> np.ndarray | None:
    """The partition (0 train, 1 validation, 2 test) of each of ``files``, or None without the file."""
    if not path.is_file():
        return None
    parts = {}
    for number, fields in _lines(path):
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ToolkitError(f"{path}, line {number}: expected '<file> 0|1|2'")
        parts[fields[0]] = int(fields[1])
    missing = [f for f in files if f not in parts]
    if missing:
        raise ToolkitError(f"{path} has no row for {missing[0]} ({len(missing)} listed images have none)")
    return np.array([parts[f] for f in files], dtype=np.int64)


def split_rows(n: int, partition: np.ndarray | None, options, split: str) -> np.ndarray:
    if partition is not None and (partition == 2).any():
        rows = np.flatnonzero(partition == (2 if split == "test" else 0))
    else:
        rows = split_indices(n, options.test_fraction, options.split_seed, split).numpy()
    return rows[: options.max_images] if options.max_images else rows


def image_folder(root: Path, name: str | None) -> Path:
    if name is not None:
        folder = root / name
        if not folder.is_dir():
            raise ToolkitError(f"CelebA image folder not found: {folder}")
        return folder
    for candidate in IMAGE_FOLDERS:
        if (root / candidate).is_dir():
            return root / candidate
    expected = " or ".join(f"{root / c}/" for c in IMAGE_FOLDERS)
    raise ToolkitError(f"CelebA images not found: expected {expected} (or name the folder with data.options.images)")


def crop_box(width: int, height: int, crop: float, center: float) -> tuple[float, float, float, float]:
    """The square (left, top, right, bottom): ``crop`` x width, centred at ``center`` x height, inside the image."""
    side = min(crop * width, height)
    left = (width - side) / 2
    top = min(max(center * height - side / 2, 0.0), height - side)
    return left, top, left + side, top + side


def input_crop(options, width: int, height: int) -> tuple[float, float, float, float]:
    """The box of any face image that training keeps (``translate`` and ``interpolate`` use it)."""
    return crop_box(width, height, options.crop, options.crop_center)


def decode(path: Path, options) -> np.ndarray:
    """One image as uint8 ``(S, S, 3)``: cropped and resized as the module doc says."""
    from PIL import Image

    size = options.image_size
    if not path.is_file():
        raise ToolkitError(f"CelebA image {path} is missing (it is listed in {ATTR_FILE})")
    try:
        with open_image(path) as img:  # the shared reader: EXIF orientation applied
            rgb = img.convert("RGB")
    except ImageError as exc:
        raise ToolkitError(f"cannot read CelebA image {exc}") from None
    box = crop_box(*rgb.size, options.crop, options.crop_center)
    return np.asarray(rgb.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None), dtype=np.uint8)


def cache_path(options, root: Path, folder: Path, split: str, attr: Path, partition: Path,
               images: list[Path] = ()) -> Path | None:
    """The cache file of this split: ``<split>-<settings>-<contents>.npz`` under ``options.cache``.

    The settings part hashes the options that change the decoded pixels, the folders and the
    split; the contents part hashes the attribute and partition files' bytes and each image
    file's name, size and modification time, so replacing or touching any image (or an attribute
    row) makes a new key: a cache never serves images that are not the ones on disk.
    """
    if options.cache is None:
        return None
    settings = options.model_dump(mode="json", exclude={"cache", "root", "images"})
    prefix = hashlib.sha256(json.dumps([CACHE_VERSION, str(root.resolve()), str(folder.resolve()), split, settings],
                                       sort_keys=True).encode()).hexdigest()[:16]
    key = hashlib.sha256()
    for path in (attr, partition):
        key.update(path.read_bytes() if path.is_file() else b"-")
    for path in images:
        try:
            st = path.stat()
            key.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            key.update(f"{path.name}\0missing\n".encode())
    return _path(options.cache) / f"{split}-{prefix}-{key.hexdigest()[:16]}.npz"


def clear_stale(path: Path) -> None:
    """Remove the cache files of the same split and settings as ``path`` but other contents."""
    split, prefix, _ = path.stem.split("-", 2)
    for old in path.parent.glob(f"{split}-{prefix}-*.npz"):
        if old != path:
            old.unlink(missing_ok=True)


def _read_cache(path: Path | None):
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["images"], f["labels"], [str(a) for a in f["attributes"]]
    except (OSError, ValueError, KeyError):
        return None  # unreadable: decode again


def _write_cache(path: Path | None, images: np.ndarray, labels: np.ndarray, attributes: list[str]) -> None:
    if path is None:
        return

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels, attributes=np.array(attributes, dtype=np.str_))

    try:
        atomic_write(path, write)
        clear_stale(path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def load(options, split: str) -> ImageSet:
    """The ``split`` ('train' or 'test') of CelebA under ``options.root``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = _path(options.root)
    attr, partition_file = root / ATTR_FILE, root / PARTITION_FILE
    if not attr.is_file():
        raise ToolkitError(f"CelebA attribute file not found: expected {attr} (point data.options.root at its folder)")
    folder = image_folder(root, options.images)
    files, names, all_labels = read_attributes(attr)
    rows = split_rows(len(files), read_partition(partition_file, files), options, split)
    where = cache_path(options, root, folder, split, attr, partition_file, [folder / files[i] for i in rows])
    cached = _read_cache(where)
    if cached is not None:
        images, labels, names = cached
    else:
        size = options.image_size
        images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        for j, i in enumerate(rows):
            images[j] = decode(folder / files[i], options)
        labels = np.ascontiguousarray(all_labels[rows])
        _write_cache(where, images, labels, names)
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(tensor, {a: label_tensor[:, k].clone() for k, a in enumerate(names)}, {a: list(CLASSES) for a in names})
