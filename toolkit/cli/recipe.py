"""``toolkit recipe show|validate|schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .base import app

recipe_app = typer.Typer(help="Show, validate or describe recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")

SET_HELP = "Override a recipe field: key.path=value (value read as YAML). Repeatable."


def load_resolved(path: Path, overrides: list[str]):
    from ..plugins import load_resolved

    return load_resolved(path, overrides)


@recipe_app.command("show")
def show(recipe: Path = typer.Argument(..., help="Recipe YAML file."),
         set_: list[str] = typer.Option([], "--set", help=SET_HELP)):
    """Print the resolved recipe: overrides applied, every plugin option filled in."""
    from ..recipe import to_yaml

    typer.echo(to_yaml(load_resolved(recipe, set_)), nl=False)


@recipe_app.command("validate")
def validate(recipe: list[Path] = typer.Argument(..., help="Recipe YAML files."),
             set_: list[str] = typer.Option([], "--set", help=SET_HELP)):
    """Check recipes (keys, types, plugin names and options); exit 1 on the first error."""
    for path in recipe:
        r = load_resolved(path, set_)
        typer.echo(f"ok: {path} ({r.name}: dataset {r.data.dataset}, network {r.model.network}, "
                   f"losses {', '.join(r.losses)})")


@recipe_app.command("schema")
def schema():
    """Print the JSON schema of recipes (for editors and validators)."""
    from ..recipe import Recipe

    typer.echo(json.dumps(Recipe.model_json_schema(), indent=2))
