"""``toolkit plugins``: what is installed, from which distribution, what it registered."""

from __future__ import annotations

import json

import typer

from .base import app


@app.command("plugins")
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List plugins, their distribution and version, and what each registered."""
    from rich.console import Console
    from rich.table import Table

    from ..plugins import KINDS, get_plugins

    pm = get_plugins()
    for kind in KINDS.values():
        pm.registry(kind)  # collect registrations
    rows = []
    for info in pm.info.values():
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "hooks": info.hooks, "registered": info.registered, "error": info.error})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="toolkit plugins")
    for column in ("plugin", "distribution", "version", "registered"):
        table.add_column(column)
    for row in rows:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["registered"].items())
        if row["error"]:
            registered = f"[red]skipped: {row['error']}[/red]"
        elif not registered:
            registered = ", ".join(row["hooks"]) or "-"
        table.add_row(row["name"], row["distribution"], row["version"], registered)
    Console().print(table)
