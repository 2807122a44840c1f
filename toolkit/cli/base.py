"""The root ``toolkit`` command (its options); each command module adds its commands to ``app``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="toolkit",
    help="Controllable image generation and translation with disentangled representations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: flags without a value placeholder (typer's rich panels show <bool>)
)
state = {"debug": False}


def _print_version(asked: bool) -> None:
    """``--version``: eager, so it works without a command (``toolkit --version``)."""
    if asked:
        from .. import __version__

        typer.echo(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
):
    state["debug"] = debug
