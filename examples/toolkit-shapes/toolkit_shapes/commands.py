"""Command ``toolkit draw-shape``: write one 28x28 shape as a PNG (an input for ``toolkit translate``)."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.errors import ToolkitError


def draw_shape(
    shape: str = typer.Argument(..., help="circle, square or triangle"),
    size: str = typer.Option("large", "--size", help="small or large"),
    seed: int = typer.Option(0, "--seed", help="Seed of the position and brightness."),
    output: Path = typer.Option(Path("shape.png"), "-o", "--output", help="PNG to write (28x28, grey)."),
):
    """Draw a circle, square or triangle like those of dataset 'shapes'."""
    import torch
    from PIL import Image

    from toolkit.errors import did_you_mean

    from .data import SHAPES, SIZES, render

    if shape not in SHAPES:
        raise ToolkitError(f"unknown shape '{shape}': {did_you_mean(shape, SHAPES)}")
    if size not in SIZES:
        raise ToolkitError(f"unknown size '{size}': {did_you_mean(size, SIZES)}")
    from toolkit.outputs import IMAGE_FORMATS, output_file, writing

    output = output_file(output, f"{shape}.png", "-o", suffixes=IMAGE_FORMATS)  # a folder: the file inside it
    g = torch.Generator().manual_seed(seed)
    image = render(torch.tensor([SHAPES.index(shape)]), torch.tensor([SIZES.index(size)]), g)[0, 0]
    with writing(output):
        Image.fromarray((image * 255).round().to(torch.uint8).numpy()).save(output, format=IMAGE_FORMATS[output.suffix.lower()])
    typer.echo(f"wrote {output} ({size} {shape})")
