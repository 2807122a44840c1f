"""``toolkit explore``: serve a local page to play with a checkpoint (needs the ``explore`` extra)."""

from __future__ import annotations

import errno
import ipaddress
import socket
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


def check_port(host: str, port: int) -> None:
    """Refuse, before the model loads, a ``host:port`` the server could not listen on: bound as
    uvicorn (under Gradio) binds it, with SO_REUSEADDR, then let go."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ToolkitError(f"port {port} on {host} is in use; choose another with --port") from None
        raise ToolkitError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


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

    # everything the command line gives is checked before the model loads
    if not is_loopback(host) and not allow_remote:
        raise ToolkitError(f"--host {host} makes the page reachable from other machines, without a login; "
                           "add --allow-remote if that is what you want")
    if port is not None:  # without --port, Gradio takes the first free one from 7860
        check_port(host, port)
    if importlib.util.find_spec("gradio") is None:
        raise ToolkitError(f"toolkit explore needs Gradio: {INSTALL_HINT}")
    model = open_model(checkpoint, device)
    from ..explore import serve

    serve(model, host=host, port=port, threads=threads or None, echo=lambda line: typer.echo(line, err=True))
