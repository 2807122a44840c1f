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
path relative to the folder. Hidden files and folders are skipped, as file managers hide
them: names starting with ``.`` (``.DS_Store``, macOS's AppleDouble ``._photo.png``,
``.git/``, ``.ipynb_checkpoints/``) and the folders in :data:`SKIPPED_FOLDERS`
(``__MACOSX/``, ``@eaDir/``, ...).

File names in the CSV are matched to the images the way people write them on any system
(:func:`match_file`): ``\\`` or ``/`` as separator, a leading ``./``, Unicode in either
normal form (macOS writes decomposed accents), an absolute path inside the folder, a path
relative to the CSV's own folder; then, only where exactly one image fits, a different case
(``IMG_01.JPG`` for ``img_01.jpg``) or no extension (``cats/001`` for ``cats/001.png``).
A name that fits several images is an error that lists them.

Each CSV column but ``file`` is an attribute whose classes are its distinct non-empty values,
taken over the whole CSV so that both splits share them. A column whose values are all
numbers (as spreadsheets and pandas write them: ``1``, ``1.0``, ``10``, ``2.5e1``) is a
numeric column: values are matched by number (``1`` and ``1.0`` are one class), classes are
ordered by value (``1, 2, 10``, not ``1, 10, 2``), and ``NaN`` / ``NA`` / ``null`` cells mean
"no label". Each class is named as the CSV writes it (a number written two ways is named by
its shortest form). Other columns' classes are sorted as text. A first column without a name
(the row index pandas writes by default) is ignored. Images the CSV does not name have no
labels. The test split is the first ``round(N * test_fraction)`` images of a random
permutation drawn from ``split_seed``. Images are converted as described in
:mod:`toolkit.images` and kept as uint8.
"""

from __future__ import annotations

import csv
import math
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch

from toolkit.data import MISSING, ImageSet
from toolkit.errors import ToolkitError
from toolkit.images import load_image
from toolkit.recipe import expand_path

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "test")
# folders that operating systems, NAS boxes and notebooks add next to people's files
SKIPPED_FOLDERS = frozenset({"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information", "lost+found"})
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
NOT_A_NUMBER = frozenset({"nan", "na", "n/a", "#n/a", "null", "none", "-nan"})


def hidden(name: str) -> bool:
    """Whether a file or folder name is one that file managers hide (or a system folder)."""
    return name.startswith(".") or name in SKIPPED_FOLDERS or name.lower() in ("thumbs.db", "desktop.ini")


def find_images(folder: Path) -> list[str]:
    """Paths (posix, relative to ``folder``) of the image files below it, sorted; hidden ones skipped."""
    if not folder.exists():
        raise ToolkitError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise ToolkitError(f"image folder {folder} is not a folder")
    names, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not hidden(d)]
        for f in files:
            if hidden(f) or os.path.splitext(f)[1].lower() not in EXTENSIONS:
                continue
            path = Path(top) / f
            if path.is_file():
                names.append(path.relative_to(folder).as_posix())
    names.sort()
    if not names:
        raise ToolkitError(f"no images found under {folder} (looked for {', '.join(EXTENSIONS)}, any case; "
                           f"hidden files are skipped)")
    return names


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _clean(cell: str) -> str:
    """A CSV path as posix text: backslashes to slashes, no './', no doubled or trailing slashes."""
    text = _nfc(cell.strip()).replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    prefix = "/" if text.startswith("/") else ""
    return prefix + "/".join(parts)


class _Names:
    """Lookup tables for :func:`match_file`."""

    def __init__(self, names: list[str]):
        self.exact = {_nfc(n): i for i, n in enumerate(names)}
        self.lower: dict[str, list[int]] = {}
        self.stem: dict[str, list[int]] = {}
        self.stem_lower: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            n = _nfc(n)
            stem = n[: -len(PurePosixPath(n).suffix)]
            self.lower.setdefault(n.lower(), []).append(i)
            self.stem.setdefault(stem, []).append(i)
            self.stem_lower.setdefault(stem.lower(), []).append(i)


def _relative(text: str, folder: Path, csv_dir: Path | None) -> list[str]:
    """Candidate paths of ``text`` relative to the image folder (first the plain reading)."""
    candidates = []
    windows = PureWindowsPath(text)
    absolute = text.startswith("/") or bool(windows.drive)
    bases = [] if absolute else [None] + ([csv_dir] if csv_dir is not None else [])
    if absolute:
        bases = [Path(text)]
    for base in bases:
        full = Path(text) if absolute else (None if base is None else base / text)
        if full is None:
            candidates.append(text)
            continue
        for root in (folder, folder.resolve()):
            for path in (full, Path(os.path.normpath(full))):
                try:
                    candidates.append(_nfc(path.relative_to(root).as_posix()))
                except ValueError:
                    pass
    return list(dict.fromkeys(c for c in candidates if c and c != "."))


def match_file(cell: str, table: _Names, names: list[str], folder: Path, csv_dir: Path | None = None) -> int | None:
    """The index in ``names`` of the image a CSV cell names, or None; raises when several fit."""
    text = _clean(cell)
    candidates = _relative(text, folder, csv_dir)
    for c in candidates:
        if c in table.exact:
            return table.exact[c]
    for lookup, key, how in ((table.lower, str.lower, "in another case"),
                             (table.stem, None, "without its extension"),
                             (table.stem_lower, str.lower, "without its extension, in another case")):
        for c in candidates:
            if lookup is not table.lower and PurePosixPath(c).suffix.lower() in EXTENSIONS:
                continue  # a name with an image extension is not matched by its stem
            hits = lookup.get(key(c) if key else c, [])
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                listed = ", ".join(names[i] for i in hits[:5])
                raise ToolkitError(f"file '{cell.strip()}' fits several images ({how}): {listed}; write the exact name")
    return None


def _number(text: str) -> float | None:
    return float(text) if NUMBER.match(text) else None


def class_names(values: list[str]) -> tuple[list[str], dict[str, int]]:
    """``(classes, value -> class index)`` of one column's non-empty values (see the module doc).

    Missing-number cells (``NaN`` ...) of a numeric column map to -1.
    """
    distinct = list(dict.fromkeys(values))
    numbers = {v: _number(v) for v in distinct if v.lower() not in NOT_A_NUMBER}
    numeric = bool(numbers) and all(x is not None and math.isfinite(x) for x in numbers.values())
    if not numeric:
        classes = sorted(distinct)
        return classes, {c: k for k, c in enumerate(classes)}
    forms: dict[float, list[str]] = {}
    for text, x in numbers.items():
        forms.setdefault(x, []).append(text)
    order = sorted(forms)
    classes = []
    for x in order:
        written = forms[x]
        if len(written) == 1:
            classes.append(written[0])
        else:
            classes.append(str(int(x)) if x.is_integer() else repr(x))
    index = {x: k for k, x in enumerate(order)}
    mapping = {v: (index[numbers[v]] if v in numbers else MISSING) for v in distinct}
    return classes, mapping


def read_labels(path: Path, folder: Path, names: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Labels (-1 = none) of ``names`` and class names per attribute, from the CSV at ``path``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except IsADirectoryError:
        raise ToolkitError(f"cannot read labels CSV {path}: it is a folder, expected a .csv file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ToolkitError(f"cannot read labels CSV {path}: {exc}") from None
    if not rows:
        raise ToolkitError(f"labels CSV {path} is empty (expected a header with a 'file' column)")
    header = [c.strip() for c in rows[0][1]]
    skip_first = len(header) > 1 and header[0] in ("", "Unnamed: 0")  # the index column pandas writes
    if skip_first:
        header[0] = "(pandas index)"
    if "file" not in header:
        raise ToolkitError(f"labels CSV {path} has no 'file' column (columns found: {', '.join(header)})")
    if "" in header or len(set(header)) != len(header):
        raise ToolkitError(f"labels CSV {path}: every column needs a distinct, non-empty name (found: {', '.join(header)})")
    attributes = [c for c in header if c not in ("file", "(pandas index)")]
    table = _Names(names)
    csv_dir = path.parent if path.parent.resolve() != folder.resolve() else None
    values: dict[str, dict[int, str]] = {a: {} for a in attributes}
    seen: dict[int, tuple[int, str]] = {}
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise ToolkitError(f"{path}, line {line}: {len(row)} cells but the header has {len(header)} columns")
        cells = dict(zip(header, [c.strip() for c in row] + [""] * (len(header) - len(row))))
        name = cells["file"]
        if not name:
            raise ToolkitError(f"{path}, line {line}: the 'file' cell is empty")
        try:
            i = match_file(name, table, names, folder, csv_dir)
        except ToolkitError as exc:
            raise ToolkitError(f"{path}, line {line}: {exc}") from None
        if i is None:
            parts = _clean(name).split("/")
            if any(hidden(p) for p in parts):
                why = "is a hidden file or in a hidden folder (those are skipped)"
            elif (folder / _clean(name)).is_file():
                why = "is not an image file"
            else:
                why = "does not exist"
            raise ToolkitError(f"{path}, line {line}: file '{name}' {why} under {folder}")
        if i in seen:
            other_line, other = seen[i]
            also = f"'{other}' on line {other_line}" if other != name else f"line {other_line}"
            raise ToolkitError(f"{path}, line {line}: '{name}' is listed twice (also as {also})")
        seen[i] = (line, name)
        for a in attributes:
            if cells[a]:
                values[a][i] = cells[a]
    labels, classes = {}, {}
    for a in attributes:
        classes[a], position = class_names(list(values[a].values()))
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
