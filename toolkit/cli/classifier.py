"""``toolkit classifier train|show``: reference classifiers that judge generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .base import app

classifier_app = typer.Typer(help="Train or inspect reference classifiers (to judge generated images).",
                             no_args_is_help=True)
app.add_typer(classifier_app, name="classifier")

OPTION_HELP = "A dataset option: key=value (value read as YAML), e.g. root=~/data, download=false. Repeatable."
DEFAULT_DIR = "~/.cache/toolkit/classifiers"


def default_path(dataset: str, attribute: str) -> Path:
    from ..recipe import expand_path

    return expand_path(f"{DEFAULT_DIR}/{dataset}-{attribute}.safetensors")


@classifier_app.command("train")
def train(
    dataset: Optional[str] = typer.Argument(None, metavar="DATASET", help="Registered dataset (see toolkit plugins); or use --recipe."),
    recipe: Optional[Path] = typer.Option(
        None, "--recipe", help="Take the dataset, its options and the attributes it declares (e.g. hair) from a recipe."),
    attribute: str = typer.Option(..., "--attribute", "-a", help="The labeled attribute to predict."),
    option: list[str] = typer.Option([], "--option", metavar="KEY=VALUE", help=OPTION_HELP),
    network: Optional[str] = typer.Option(None, "--network", help="Registered classifier network (default: the one registered)."),
    network_option: list[str] = typer.Option([], "--network-option", metavar="KEY=VALUE", help="A network option: key=value. Repeatable."),
    epochs: int = typer.Option(8, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=2),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="Output file (default: ~/.cache/toolkit/classifiers/DATASET-ATTR.safetensors)."),
    limit: Optional[int] = typer.Option(None, "--limit", hidden=True, help="Train on at most this many images (tests)."),
    reject: bool = typer.Option(True, "--reject/--no-reject", help="Learn a 'no class' output from blobs, noise and "
                                "ghosts of two classes, so blurred samples are not counted as a class."),
    balance: bool = typer.Option(True, "--balance/--no-balance", help="Draw every class equally often (class-balanced "
                                 "sampling), so a rare class (pale skin, bald) is recognised, not outvoted."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Also mirror training images left-right (for classes "
                              "a mirror image keeps: faces, clothes; not digits)."),
):
    """Train a classifier for DATASET's ATTRIBUTE; save it with its test accuracy and data hash."""
    from rich.console import Console

    from ..classifier import default_network, save_classifier, train_classifier
    from ..errors import ToolkitError
    from ..recipe import apply_overrides
    from .progress import progress

    attributes = {}
    dataset_options = {}
    if recipe is not None:
        from ..plugins import load_resolved

        r = load_resolved(recipe)
        if dataset is not None and dataset != r.data.dataset:
            raise ToolkitError(f"DATASET '{dataset}' differs from the recipe's '{r.data.dataset}': give one of them")
        dataset, dataset_options, attributes = r.data.dataset, r.data.options, r.data.attributes
    if dataset is None:
        raise ToolkitError("missing DATASET (e.g. toolkit classifier train mnist --attribute digit), or use --recipe RECIPE")
    dataset_options = apply_overrides(dataset_options, option, source="--option")
    network_options = apply_overrides({}, network_option, source="--network-option")
    from ..outputs import output_file, writing

    out = output_file(out or default_path(dataset, attribute), f"{dataset}-{attribute}.safetensors", "-o")  # before training
    network = network or default_network()
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"training classifier '{network}' for {dataset} / {attribute} ({epochs} epochs) -> {out}")
    with progress(console, "classifier", None) as bar:

        def update(step: int, total: int, info: dict):
            bar.update(step, total=total, info=f"epoch {info['epoch']}/{epochs} loss {info['loss']:.4f}")

        module, meta = train_classifier(dataset, dataset_options, attribute, network, network_options, epochs=epochs,
                                        batch_size=batch_size, lr=lr, seed=seed, device=device, progress=update,
                                        limit=limit, attributes=attributes, reject=reject,
                                        balance=balance, flip=flip)
    with writing(out):
        save_classifier(out, module, meta)
    typer.echo(f"test accuracy {meta['test_accuracy']:.2%} on {meta['test_images']} images "
               f"(balanced {meta['balanced_accuracy']:.2%}; per class {per_class_text(meta['class_accuracy'])}); saved {out}")


def per_class_text(per_class: dict) -> str:
    """``name 97.1%, other 88.0%`` (``-`` for a class without test images)."""
    return ", ".join(f"{k} {'-' if v is None else format(v, '.1%')}" for k, v in per_class.items())


def balanced_line(meta: dict) -> str:
    """The per-class line of ``show``; files from before per-class accuracy say so."""
    if "class_accuracy" not in meta:
        return "per class:     not recorded (trained before toolkit recorded it; retrain to see it)"
    sampling = "class-balanced" if meta.get("balance") else "plain"
    return (f"per class:     balanced {meta['balanced_accuracy']:.2%}; {per_class_text(meta['class_accuracy'])} "
            f"({sampling} sampling)")


@classifier_app.command("show")
def show(
    path: Path = typer.Argument(..., metavar="CLASSIFIER", help="A classifier .safetensors file."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
):
    """Print a classifier's data set, accuracy, hashes and training settings."""
    from ..classifier import classifier_hash, read_classifier_meta

    meta = read_classifier_meta(path)
    if as_json:
        typer.echo(json.dumps({**meta, "file_sha256": classifier_hash(path)}, indent=2))
        return
    options = ", ".join(f"{k}={v}" for k, v in meta.get("dataset_options", {}).items()) or "-"
    net_options = ", ".join(f"{k}={v}" for k, v in meta.get("network_options", {}).items()) or "-"
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    lines = [
        f"file:          {path}",
        f"file sha256:   {classifier_hash(path)}",
        f"dataset:       {meta.get('dataset')} ({options})",
        f"attribute:     {meta.get('attribute')}: {len(meta.get('classes', []))} classes ({', '.join(meta.get('classes', []))})",
        f"network:       {meta.get('network')} ({net_options}); images {tuple(meta.get('image_shape', []))}",
        f"test accuracy: {meta.get('test_accuracy', float('nan')):.2%} on {meta.get('test_images')} images",
        balanced_line(meta),
        f"data hash:     {meta.get('data_hash')}",
        f"trained:       {meta.get('epochs')} epochs, seed {meta.get('seed')}{', left-right flips' if meta.get('flip') else ''}",
        f"versions:      {versions}",
    ]
    typer.echo("\n".join(lines))
