"""Downloads through torchvision, with a failure reported as one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from toolkit.errors import ToolkitError


def download(name: str, root: Path, fetch: Callable[[], object]) -> None:
    """Run ``fetch`` (a torchvision dataset constructor with ``download=True``).

    torchvision reports an unreachable mirror or a bad checksum as a RuntimeError with the
    tried URLs on several lines; that becomes a ToolkitError naming the data, the folder and
    the way round it.
    """
    try:
        fetch()
    except (RuntimeError, OSError, ValueError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
        raise ToolkitError(
            f"downloading {name} to {root} failed: {reason}; check the network, or copy the files there "
            "yourself and set data.options.download=false"
        ) from None
