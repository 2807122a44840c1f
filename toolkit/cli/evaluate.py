"""``toolkit evaluate`` and ``toolkit figures``: measure a checkpoint, draw the paper's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import app
from .images import CKPT_HELP, open_model


@app.command("evaluate")
def evaluate(
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    classifier: Optional[Path] = typer.Option(None, "--classifier", help="Judge (default: the recipe's evaluate.classifier)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Generated images per class for the judge, and held-out images (the first N) "
                             "translated into every class (default: evaluate.samples_per_class)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the generated latents (default: the recipe's)."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="JSON report (default: next to the checkpoint; in a folder: report.eval.json there)."),
    strength: float = typer.Option(1.0, "--strength", min=0.0, max=10.0, help="Translations: as `toolkit translate --strength`."),
    keep_details: bool = typer.Option(False, "--keep-details", help="Translations: as `toolkit translate --keep-details`."),
    device: str = typer.Option("auto", "--device"),
):
    """Generator error (overall, per class), encoder accuracy, reconstruction error."""
    from rich.console import Console
    from rich.table import Table

    from ..evaluate import classifier_command, write_report
    from ..evaluate import evaluate as run
    from ..outputs import output_file, writing
    from ..rundir import report_path

    if output is not None:
        output = output_file(output, "report.eval.json", "-o")
    model = open_model(checkpoint, device)
    if output is None:
        output = output_file(report_path(model.path), report_path(model.path).name, "the report next to the checkpoint")
    cfg = model.recipe.evaluate
    judge = classifier or cfg.classifier_path()
    if judge is None:
        typer.echo("no classifier given (--classifier or the recipe's evaluate.classifier): generator error skipped", err=True)
    elif classifier is None and not judge.is_file():  # the recipe's judge, not made yet: measure the rest
        typer.echo(f"note: the recipe's classifier {judge} is not there, so generator error and translation "
                   f"accuracy are skipped; make it with: {classifier_command(model.recipe, judge)}", err=True)
        judge = None
    report = run(model, judge, n or cfg.samples_per_class, cfg.seed if seed is None else seed,
                 strength=strength, keep_details=keep_details)
    if judge is not None:
        from ..classifier import read_classifier_meta
        from ..evaluate import judge_warnings

        for line in judge_warnings(read_classifier_meta(judge), judge):
            typer.echo(line, err=True)
    with writing(output):
        path = write_report(report, output)
    typer.echo(f"{model.path} (step {model.step})")  # above the table, not its title: rich wraps a title at the table's width
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    if "generator_error" in report:
        ge = report["generator_error"]
        table.add_row("generator error", f"{ge['overall']:.2%}")
        for name, value in ge["per_class"].items():
            table.add_row(f"  {ge['variable']}={name}", f"{value:.2%}")
        table.add_row("  refused by the judge (no class)", f"{ge['refused']:.2%}")
        real = ge.get("real_spread")
        table.add_row("  within-class spread (held-out images: " + (f"{real:.3f})" if real is not None else "-)"),
                      f"{ge['spread']:.3f}")
    if "translation_accuracy" in report:
        ta = report["translation_accuracy"]
        table.add_row(f"translation accuracy ({ta['images']} test images)", f"{ta['overall']:.2%}")
        for name, value in ta["per_class"].items():
            table.add_row(f"  {ta['variable']} -> {name}", f"{value:.2%}")
        table.add_row("  refused by the judge (no class)", f"{ta['refused']:.2%}")
        how = f"strength {ta['strength']:g}" + (", keep details" if ta["keep_details"] else "")
        table.add_row(f"  mean |translation - input| ({how})", f"{ta['mean_abs_change']:.4f}")
    balanced = report.get("encoder_balanced_accuracy", {})
    for name, value in report["encoder_accuracy"].items():
        table.add_row(f"encoder accuracy ({name})", f"{value:.2%}")
        if name in balanced:
            table.add_row("  balanced over classes", f"{balanced[name]:.2%}")
    table.add_row("reconstruction MSE", f"{report['reconstruction_mse']:.4f}")
    Console().print(table)
    protocol = ", ".join(f"{k}={v}" for k, v in report["protocol"].items())
    typer.echo(f"protocol: {protocol}\nwrote {path}")


@app.command("figures")
def figures(
    checkpoint: Optional[Path] = typer.Option(None, "-c", "--checkpoint", help=CKPT_HELP),
    output: Path = typer.Option(Path("figures"), "-o", "--output", help="Folder for the PNGs."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device"),
):
    """The paper's figures: generation grid, translations, interpolations, continuous sweeps."""
    from ..figures import make_figures
    from ..outputs import output_folder, writing

    output = output_folder(output, "-o")
    model = open_model(checkpoint, device)
    test = model.load_data("test")
    with writing(output):
        paths = make_figures(model, test, output, seed)
    for path in paths:
        typer.echo(f"wrote {path}")
