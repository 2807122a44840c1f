"""The ``toolkit`` command: one small module per group of commands."""

from __future__ import annotations

import sys

import typer

from ..errors import ToolkitError

app = typer.Typer(
    name="toolkit",
    help="Controllable image generation and translation with disentangled representations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
state = {"debug": False}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
):
    state["debug"] = debug
    if version:
        from .. import __version__

        typer.echo(f"toolkit {__version__}")
        raise typer.Exit()


def _register_commands() -> None:
    from . import classifier, evaluate, images, plugins, recipe, sweep, train  # noqa: F401  (they add commands to app)

    from ..plugins import get_plugins

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
    except OSError as exc:  # the system refused a read or write (disk full, permissions, a folder in the way)
        if state["debug"] or "--debug" in sys.argv:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"error: {where}{exc.strerror or exc} (toolkit --debug ... shows where)", err=True)
        sys.exit(1)
