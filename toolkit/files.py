"""Writing files: atomically, with the permissions of any new file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then move the file into place, so readers never see half a file.

    The file gets the permissions of any new file (0666 less the umask), not the 0600 of a
    private temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, f".{path.name}.", path.suffix)
    mode = tmp.stat().st_mode & 0o7777  # 0666 less the umask
    try:
        write(tmp)
        if tmp.stat().st_mode & 0o7777 != mode:  # a writer that made its own file (safetensors: 0600)
            tmp.chmod(mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """A new, empty file with a unique name, created with mode 0666 so that the umask decides."""
    for _ in range(100):
        candidate = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name in {folder}")
