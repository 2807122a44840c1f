"""``toolkit plugins``: what is installed, from which distribution, what it registered;
``toolkit plugins show [KIND] NAME``: one entry's description and options."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..errors import ToolkitError
from .base import app

plugins_app = typer.Typer(help="List plugins and what they registered; `show [KIND] NAME` describes one entry.")
app.add_typer(plugins_app, name="plugins")


def _loaded():
    from ..plugins import KINDS, get_plugins

    pm = get_plugins()
    for kind in KINDS.values():
        pm.registry(kind)  # collect registrations
    return pm


@plugins_app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """List plugins, their distribution and version, what each registered (with descriptions), and
    what was skipped. `toolkit plugins show [KIND] NAME` gives one entry's options."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..plugins import KINDS

    pm = _loaded()
    rows = []
    for info in pm.info.values():
        descriptions = {kind: {name: pm.registry(kind).get(name).description for name in names}
                        for kind, names in info.registered.items()}
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "hooks": info.hooks, "registered": info.registered, "descriptions": descriptions,
                     "commands": info.commands, "skipped": info.skipped, "error": info.error})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    table = Table(title="toolkit plugins")
    for column in ("plugin", "distribution", "version", "registered"):
        table.add_column(column)
    for row in rows:
        parts = [f"{kind}: {', '.join(names)}" for kind, names in row["registered"].items()]
        parts += [f"command: {', '.join(row['commands'])}"] if row["commands"] else []
        registered = escape("; ".join(parts))
        if row["error"]:
            registered = f"[red]skipped: {escape(row['error'])}[/red]"
        elif not registered:
            registered = ", ".join(row["hooks"]) or "-"
        for line in row["skipped"]:
            registered += f"\n[yellow]{escape(line)}[/yellow]"
        table.add_row(row["name"], row["distribution"], row["version"], registered)
    console.print(table)
    entries = Table(title="registered (details: toolkit plugins show KIND NAME)")
    for column in ("kind", "name", "plugin", "description"):
        entries.add_column(column)
    for kind in KINDS.values():
        for entry in pm.registry(kind).entries():
            entries.add_row(kind, entry.name, entry.plugin, escape(entry.description or "-"))
    console.print(entries)


def find_entry(first: str, second: Optional[str]):
    """The entry ``KIND NAME``, or ``NAME`` when one kind has it."""
    from ..errors import did_you_mean
    from ..plugins import KINDS

    pm = _loaded()
    kinds = list(KINDS.values())
    if second is not None:
        kind = {"datasets": "dataset", "networks": "network", "losses": "loss", "classifiers": "classifier"}.get(first, first)
        if kind not in kinds:
            raise ToolkitError(f"unknown kind '{first}': {did_you_mean(first, kinds)}")
        return pm.registry(kind).get(second)
    found = [pm.registry(k).get(first) for k in kinds if first in pm.registry(k)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ToolkitError(f"'{first}' is a {' and a '.join(e.kind for e in found)}: give the kind too, "
                           f"e.g. toolkit plugins show {found[0].kind} {first}")
    every = [name for k in kinds for name in pm.registry(k).names()]
    raise ToolkitError(f"nothing registered under '{first}': {did_you_mean(first, every)}")


def describe_options(model) -> list[dict]:
    """One dict per option of a pydantic model: name, type, default, required, description, limits."""
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in (model.model_fields.items() if model is not None else []):
        limits = []
        for item in field.metadata:
            for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(item, attr, None)
                if value is not None:
                    limits.append(f"{sign} {value}")
        default = None if field.default is PydanticUndefined else field.default
        if field.default_factory is not None:
            default = field.default_factory()
        rows.append({"name": name, "type": type_text(field.annotation), "required": field.is_required(),
                     "default": _jsonable(default), "description": field.description or "",
                     "limits": ", ".join(limits)})
    return rows


def type_text(annotation) -> str:
    """``int``, ``float``, ``one of 'mean', 'sum'``, ``str | None``, ``list[int]``."""
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _jsonable(value):
    from pathlib import Path

    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


@plugins_app.command("show")
def show(
    first: str = typer.Argument(..., metavar="[KIND] NAME", help="dataset, network, loss or classifier, then its name "
                                "(the kind may be left out when the name is unique)."),
    second: Optional[str] = typer.Argument(None, hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the options' JSON schema)."),
):
    """One registered entry: its plugin and distribution, description, and options (type, default,
    limits, description), as a recipe gives them (`data.options`, `model.options`, `losses.NAME.options`)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..plugins import get_plugins

    entry = find_entry(first, second)
    info = get_plugins().info.get(entry.plugin)
    options = describe_options(entry.options)
    where = {"dataset": "data.options", "network": "model.options", "loss": f"losses.{entry.name}.options",
             "classifier": "--network-option key=value"}.get(entry.kind, "options")
    if as_json:
        typer.echo(json.dumps({"kind": entry.kind, "name": entry.name, "plugin": entry.plugin,
                               "distribution": info.distribution if info else "", "version": info.version if info else "",
                               "description": entry.description, "options_key": where, "options": options,
                               "schema": entry.options.model_json_schema() if entry.options is not None else None},
                              indent=2, default=str))
        return
    console = Console(soft_wrap=True)
    dist = f"{info.distribution} {info.version}".strip() if info else ""
    console.print(f"{entry.kind} [bold]{escape(entry.name)}[/bold] from plugin '{escape(entry.plugin)}'"
                  + (f" ({escape(dist)})" if dist else ""))
    console.print(escape(entry.description or "(no description)"))
    if not options:
        console.print("options: none")
        return
    table = Table(title=f"options ({where})")
    for column in ("option", "type", "default", "limits", "description"):
        table.add_column(column)
    for row in options:
        default = "(required)" if row["required"] else json.dumps(row["default"], default=str)
        table.add_row(row["name"], escape(row["type"]), escape(default), row["limits"], escape(row["description"]))
    console.print(table)
