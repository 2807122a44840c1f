"""``toolkit generate|translate|interpolate``: use a checkpoint, nothing else."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from ..errors import ToolkitError
from .base import app

CKPT_HELP = "Checkpoint (.safetensors). Default: the newest under ./runs."
VAR_HELP = "Set a latent variable: NAME=VALUE (class name or index, or a number). Repeatable."


def open_model(checkpoint: Optional[Path], device: str):
    from ..distributed import pick_device
    from ..model import load_model
    from ..rundir import newest_checkpoint

    if checkpoint is None:
        checkpoint = newest_checkpoint()
        typer.echo(f"using the newest checkpoint: {checkpoint}", err=True)
    return load_model(checkpoint, str(pick_device(device)))


def done(path: Path, what: str) -> None:
    typer.echo(f"wrote {path} ({what})")


def described(spec, values: dict) -> str:
    """``item=bag, c1=0.8``: the values as set, each class by its name (``--set item=8`` says bag)."""
    return ", ".join(f"{name}={spec[name].classes[value] if spec[name].kind == 'categorical' else value}"
                     for name, value in values.items())


def image_output(output: Path, default: str) -> Path:
    """``-o``: the image file to write (inside it when it is a folder), checked before any work."""
    from ..outputs import IMAGE_FORMATS, output_file

    return output_file(output, default, "-o", suffixes=IMAGE_FORMATS)


def write_grid(images, output: Path, nrow: int, scale: int = 1) -> Path:
    from ..images import save_grid
    from ..outputs import writing

    with writing(output):
        return save_grid(images, output, nrow=nrow, scale=scale)


@app.command("generate")
def generate(
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    set_: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help=VAR_HELP),
    n: Optional[int] = typer.Option(None, "--n", min=1, max=4096,
                                    help="Images (default: 64), or images per class when no class is set (default: 10)."),
    output: Path = typer.Option(Path("generated.png"), "-o", "--output",
                                help="Image grid to write (.png, .jpg, ...; in a folder: generated.png there)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent samples."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Enlarge the PNG this many times (nearest-neighbour: pixels stay sharp)."),
    device: str = typer.Option("auto", "--device"),
):
    """Sample images with chosen characteristics (--set digit=7)."""
    output = image_output(output, "generated.png")
    model = open_model(checkpoint, device)
    values = model.spec.parse_assignments(set_)
    var = model.spec.class_variable()
    if var is not None and var.name not in values:  # one row per class, shared style per column
        per_class = n or 10
        z = model.spec.class_grid(model.sample_z(per_class, values, seed).cpu())
        images, nrow, what = model.decode(z), per_class, f"one row per {var.name}: {', '.join(var.classes)}"
    else:
        n = n or 64
        images, nrow = model.generate(n, values, seed), max(1, int(math.ceil(math.sqrt(n))))
        what = described(model.spec, values) or "random"
    done(write_grid(images, output, nrow=nrow, scale=scale), what)


@app.command("translate")
def translate(
    images: list[Path] = typer.Argument(..., metavar="IMAGE", help="Input images (any size; converted as the docs say)."),
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    set_: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help=VAR_HELP),
    sweep: Optional[str] = typer.Option(
        None, "--sweep", help="One column per value of this variable (its classes, or 5 values across a continuous prior); "
                              "--set may fix the others."),
    output: Path = typer.Option(Path("translated.png"), "-o", "--output", help="PNG grid: each row is an input, then its edits."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Enlarge the PNG this many times (nearest-neighbour: pixels stay sharp)."),
    strength: float = typer.Option(1.0, "--strength", min=0.0, max=10.0,
                                   help="How far past one-hot a set class goes (1: as trained; 2-3: stronger edits)."),
    keep_details: bool = typer.Option(False, "--keep-details",
                                      help="Add the model's edit to the input instead of redrawing it: keeps identity, "
                                           "background and sharpness (for attribute edits)."),
    device: str = typer.Option("auto", "--device"),
):
    """Edit real images by attribute: encode, set variables, decode."""
    import torch

    if not set_ and not sweep:
        raise ToolkitError("nothing to change: give --set NAME=VALUE or --sweep NAME")
    output = image_output(output, "translated.png")
    model = open_model(checkpoint, device)
    values = model.spec.parse_assignments(set_)
    if sweep and sweep in values:
        raise ToolkitError(f"--sweep {sweep} shows every value of {sweep}: drop --set {sweep}=... "
                           "(--set may fix the other variables)")
    from ..model import read_images

    x = read_images(model, images)
    if sweep:
        var = model.spec[sweep]
        settings = [{sweep: i} for i in range(var.size)] if var.kind == "categorical" else \
            [{sweep: v} for v in var.sweep(5)]
        columns = model.translations(x, [{**values, **s} for s in settings], strength, keep_details)
        what = f"input, then {sweep} = " + (", ".join(var.classes) if var.kind == "categorical" else
                                             ", ".join(f"{s[sweep]:g}" for s in settings))
    else:
        columns = [model.translate(x, values, strength, keep_details)]
        what = "input | " + described(model.spec, values)
    grid = torch.stack([x] + columns, dim=1).flatten(0, 1)
    done(write_grid(grid, output, nrow=len(columns) + 1, scale=scale), what)


@app.command("interpolate")
def interpolate(
    image_a: Path = typer.Argument(..., metavar="IMAGE_A", help="First image."),
    image_b: Path = typer.Argument(..., metavar="IMAGE_B", help="Second image."),
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    steps: int = typer.Option(9, "--steps", min=2, max=64, help="Images between and including the two ends."),
    output: Path = typer.Option(Path("interpolated.png"), "-o", "--output"),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Enlarge the PNG this many times (nearest-neighbour: pixels stay sharp)."),
    device: str = typer.Option("auto", "--device"),
):
    """Decode a straight line between the codes of two images."""
    import torch

    output = image_output(output, "interpolated.png")
    model = open_model(checkpoint, device)
    from ..model import read_images

    x = read_images(model, [image_a, image_b])
    line = model.interpolate(x[:1], x[1:], steps)
    grid = torch.cat([x[:1], line, x[1:]])
    done(write_grid(grid, output, nrow=steps + 2, scale=scale), f"{image_a.name} -> {image_b.name}, {steps} steps")
