"""Where commands write their files: checked before any work, one clear line when it cannot be.

Every command that writes a file (``generate``, ``translate``, ``interpolate``, ``evaluate``,
``figures``, ``classifier train``, ``sweep``, and plugin commands that use these helpers) goes
through :func:`output_file` or :func:`output_folder` before it starts, and writes inside
:func:`writing`:

- ``-o`` naming an existing folder (or ending in ``/``) writes the command's default file name
  inside it, as ``cp`` does;
- an image's type follows its extension (``.png``, ``.jpg``, ``.webp``, ...); an unknown one is
  refused with the list of known ones;
- missing folders on the way are made (as ``mkdir -p``); a path below a file, or in a folder
  that cannot be written, is refused before any work;
- any other failure to write (disk full, permissions) is one line naming the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import ToolkitError

# extension -> Pillow format of the grids the toolkit writes
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}


def output_file(path: str | Path, default_name: str, option: str = "-o", suffixes=None) -> Path:
    """The file a command will write for ``option`` ``path`` (see the module doc); raises a
    :class:`ToolkitError` when it cannot be written. ``suffixes``: the allowed extensions."""
    text = str(path)
    path = Path(os.path.expandvars(text)).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / default_name
    if suffixes is not None and path.suffix.lower() not in suffixes:
        known = ", ".join(sorted(suffixes))
        what = f"'{path.suffix}'" if path.suffix else "no extension"
        raise ToolkitError(f"{option} {path}: {what} is not a file type this command writes (use {known})")
    _check_parents(path, option)
    if path.exists() and not path.is_file():
        raise ToolkitError(f"{option} {path}: exists and is not a regular file")
    return path


def output_folder(path: str | Path, option: str = "-o") -> Path:
    """A folder a command will write into: refused when it is a file or cannot be made or written."""
    path = Path(os.path.expandvars(str(path))).expanduser()
    if path.exists() and not path.is_dir():
        raise ToolkitError(f"{option} {path}: is a file, not a folder")
    _check_parents(path / "x", option)
    return path


def _check_parents(path: Path, option: str) -> None:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ToolkitError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ToolkitError(f"{option} {path}: cannot write in {parent} (permission denied)")


@contextlib.contextmanager
def writing(path: Path, what: str = "write"):
    """Turn a failure to write ``path`` into one line: ``cannot write PATH: No space left on device``."""
    try:
        yield
    except ToolkitError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ToolkitError(f"cannot {what} {path}: {reason}") from exc
