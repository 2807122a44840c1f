"""The ``toolkit`` command: one small module per group of commands.

Command modules import the library inside each command, so that ``toolkit --help`` and a
user error start without torch.
"""

from __future__ import annotations

import sys

import typer

from ..errors import ToolkitError
from .base import app, state


def _register_commands() -> None:
    from ..plugins import get_plugins
    from . import classifier, evaluate, explore, images, plugins, recipe, sweep, train  # noqa: F401  (they add commands to app)

    get_plugins().add_commands(app)


def main() -> None:
    """Entry point: run the CLI; a user error prints one line and exits 1."""
    import warnings

    from ..plugins import PluginWarning

    warnings.simplefilter("default", PluginWarning)
    warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"
    try:
        _register_commands()
        app()
    except ToolkitError as exc:
        if state["debug"] or "--debug" in sys.argv:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C outside training (which saves and exits 130 itself)
        if state["debug"] or "--debug" in sys.argv:
            raise
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # the system refused a read or write (disk full, permissions, a folder in the way)
        if state["debug"] or "--debug" in sys.argv:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"error: {where}{exc.strerror or exc} (toolkit --debug ... shows where)", err=True)
        sys.exit(1)
