"""User-facing errors: one clear line, no traceback (unless --debug)."""


class ToolkitError(Exception):
    """An error caused by user input (a recipe, an image, a checkpoint, a name).

    The CLI prints ``str(error)`` as one line and exits non-zero.
    """


class RecipeError(ToolkitError):
    """A recipe that cannot be read or does not validate."""


class RegistryError(ToolkitError):
    """A name that no plugin registered, or a name registered twice."""


class CheckpointError(ToolkitError):
    """A checkpoint that cannot be read or does not match what is asked of it."""


class ImageError(ToolkitError):
    """An input image that cannot be read or converted."""


class PluginError(ToolkitError):
    """A plugin handed the core something that breaks its contract, or raised inside a call.

    The message names the registered entry, its plugin and distribution; the original
    exception (if any) is chained, so ``--debug`` shows its traceback.
    """


class LatentError(ToolkitError):
    """An unknown latent variable or a value it cannot take."""


def did_you_mean(name: str, valid, word: str = "available") -> str:
    """Format the valid choices for an error message, led by the closest one to ``name`` if any
    is close (or the one name that ``name``, 3 characters or more, begins): ``did you mean 'steps'?
    allowed: ...`` (``word`` names the list)."""
    import difflib

    valid = list(valid)
    if not valid:
        return f"none {word}"
    close = difflib.get_close_matches(name, valid, n=1)
    if not close and len(name) >= 3:  # a short form of one name ('temp' for 'temperature')
        close = [v for v in valid if v.startswith(name)]
        close = close if len(close) == 1 else []
    listed = ", ".join(valid)
    return f"did you mean '{close[0]}'? {word}: {listed}" if close else f"{word}: {listed}"


def files_like(path, suffixes: tuple[str, ...], what: str) -> str:
    """For a file ``path`` that does not exist: ``; did you mean '<path's folder>/<closest name>'?
    <what> in <folder>: a, b, ...``, over the files of its folder whose suffix is one of
    ``suffixes``, the guess only when a name is close; empty text when the folder holds none or
    cannot be read."""
    import difflib
    from pathlib import Path

    path = Path(path)
    try:
        names = sorted(p.name for p in path.parent.iterdir() if p.suffix in suffixes and p.is_file())
    except OSError:
        return ""
    if not names:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1)
    guess = f" did you mean '{path.with_name(close[0])}'?" if close else ""
    return f";{guess} {what} in {path.parent}: {', '.join(names)}"


def exception_line(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (``(no message)`` when it has none): how an
    exception from inside a plugin is told in one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else '(no message)'}"
