"""``toolkit explore``: serve a local page to play with a checkpoint (needs the ``explore`` extra)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional

import typer

from ..errors import ToolkitError
from .base import app
from .images import CKPT_HELP, open_model


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("explore")
def explore(
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on. Anything but this machine (e.g. 0.0.0.0) also needs --allow-remote."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a --host that other machines can reach (the page has no login)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port (default: the first free from 7860)."),
    device: str = typer.Option("auto", "--device"),
    threads: int = typer.Option(1, "--threads", min=0,
                                help="CPU threads for the model (0: torch's default). One keeps updates quick on a busy CPU."),
):
    """Serve a local web page to play with a model: generate, translate, interpolate, sweep."""
    import importlib.util

    from ..explore import INSTALL_HINT

    if importlib.util.find_spec("gradio") is None:  # before loading anything
        raise ToolkitError(f"toolkit explore needs Gradio: {INSTALL_HINT}")
    if not is_loopback(host) and not allow_remote:
        raise ToolkitError(f"--host {host} makes the page reachable from other machines, without a login; "
                           "add --allow-remote if that is what you want")
    model = open_model(checkpoint, device)
    from ..explore import serve

    serve(model, host=host, port=port, threads=threads or None, echo=lambda line: typer.echo(line, err=True))
