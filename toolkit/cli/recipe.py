"""``toolkit recipe show|validate|schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .base import app

recipe_app = typer.Typer(help="Show the resolved recipe, validate recipes, or print their JSON schema "
                              "(a plugin's options: toolkit plugins show KIND NAME).", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")

SET_HELP = "Override a recipe field: key.path=value (value read as YAML). Repeatable."


def load_resolved(path: Path, overrides: list[str]):
    from ..plugins import load_resolved

    return load_resolved(path, overrides)


@recipe_app.command("show")
def show(recipe: Path = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
         set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP)):
    """Print the resolved recipe: overrides applied, every plugin option filled in."""
    from ..recipe import to_yaml

    typer.echo(to_yaml(load_resolved(recipe, set_)), nl=False)


@recipe_app.command("validate")
def validate(recipe: list[Path] = typer.Argument(..., metavar="RECIPE", help="Recipe YAML files."),
             set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
             data: bool = typer.Option(True, "--data/--no-data",
                                       help="Also load the training data and build the networks, and refuse what "
                                            "they cannot run (batch size, labels, classes), as `toolkit train` "
                                            "would (reading or downloading the data as the recipe says); --no-data "
                                            "checks the recipe alone, offline.")):
    """Check recipes (keys, types, plugin names and options, and what the data and networks can run);
    exit 1 on the first error."""
    from ..checks import check_runnable
    from ..errors import ToolkitError
    from ..train import check_loss_terms

    for path in recipe:
        r = load_resolved(path, set_)
        summary = f"dataset {r.data.dataset}, network {r.model.network}, losses {', '.join(r.losses)}"
        if data:
            found = check_runnable(r, source=str(path))
            try:
                check_loss_terms(r, found["networks"], found["spec"], found["data"], found["labels"])
            except ToolkitError as exc:
                raise type(exc)(f"{path}: {exc}") from exc
            summary += f"; {found['images']:,} training images {tuple(found['shape'])}, checked against data, networks and loss terms"
        else:
            summary += "; data not checked (--no-data)"
        typer.echo(f"ok: {path} ({r.name}: {summary})")


@recipe_app.command("schema")
def schema():
    """Print the JSON schema of recipes, with the options of every installed dataset, network and
    loss term (for editors and validators)."""
    from ..plugins import recipe_schema

    typer.echo(json.dumps(recipe_schema(), indent=2))
