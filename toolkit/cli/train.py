"""``toolkit train``: a recipe in, a run folder out (recipe, metrics, samples, checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ToolkitError
from ..rundir import RunDir
from .base import app
from .recipe import SET_HELP


def evaluation_lines(record: dict, best_path) -> list[str]:
    """What the run's last evaluation says, for the console: the final checkpoint's figures and,
    when a judge measured them, the best checkpoint's step and generator error."""
    lines = []
    if record.get("encoder_accuracy"):
        acc = ", ".join(f"{k} {v:.2%}" for k, v in record["encoder_accuracy"].items())
        lines.append(f"encoder accuracy on held-out images: {acc}")
    if "generator_error" in record:
        lines.append(f"generator error {record['generator_error']:.2%}, translation accuracy "
                     f"{record['translation_accuracy']:.2%} (final checkpoint, the recipe's judge)")
        best = record.get("best") or {}
        if best and best.get("step") != record["step"]:
            lines.append(f"best checkpoint: step {best['step']}, generator error {best['generator_error']:.2%}: {best_path}")
        elif best:
            lines.append(f"best checkpoint: this final one (lowest generator error of the run's evaluations), "
                         f"also kept as {best_path}")
    return lines


@app.command("train")
def train(
    recipe: Optional[Path] = typer.Argument(None, metavar="RECIPE", help="Recipe YAML (not needed with --resume)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: runs/NAME-TIMESTAMP)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder exactly where it stopped."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default: the recipe's)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the resolved recipe and latent spec; do not train."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train on N processes (N GPUs, or CPU processes) through torchrun."),
):
    """Train a model from a recipe, with progress, sample grids and checkpoints."""
    from .. import distributed

    world = distributed.world_from_env()
    resolved = _resolved_recipe(recipe, set_, resume)
    if nproc > 1:
        if world.distributed:
            raise ToolkitError("--nproc starts torchrun itself: drop it when running under torchrun")
        _launch(nproc, resolved, recipe, set_, out, resume, device, dry_run)
        return

    _join(world, device or resolved.train.device)
    run = _claim(world, resolved.name, out, resume, dry_run)
    try:
        train_run(resolved, run.path, device=device or resolved.train.device, resume=resume is not None,
                  dry_run=dry_run, world=world)
    except BaseException:
        if world.is_main and resume is None and not dry_run:
            run.abandon()  # a run that trained nothing leaves nothing that blocks its --out
        raise
    finally:
        run.release()
        distributed.shutdown()


def _claim(world, name: str, out: Optional[Path], resume: Optional[Path], dry_run: bool) -> RunDir:
    """The run folder, claimed (by rank 0) before anything slow: a new run reserves it (made
    atomically when it is a new runs/NAME-TIMESTAMP), a resumed run locks it, so that a second
    process training into it is refused. A dry run only checks."""
    from .. import distributed

    if dry_run:
        run = RunDir(resume or out) if (resume or out) else RunDir.new(name, create=False)
        if resume is None:
            run.check_free()
        return run
    run, error = (RunDir(resume or out) if (resume or out) else None), None
    if world.is_main:
        try:
            if resume is not None:
                run.lock()
            else:
                run = run or RunDir.new(name)
                run.reserve()
        except ToolkitError as exc:
            error = str(exc)
    error, path = distributed.broadcast_object((error, run.path if run else None), world)
    if error:
        raise ToolkitError(error)
    return run if world.is_main else RunDir(path)


def _resolved_recipe(recipe: Optional[Path], set_: list[str], resume: Optional[Path]):
    """The run's recipe: RECIPE with --set overrides, or the one kept in the --resume folder."""
    from ..plugins import load_resolved, resolve
    from ..recipe import apply_overrides, parse_recipe, read_yaml

    if resume is None:
        if recipe is None:
            raise ToolkitError("missing RECIPE (e.g. toolkit train recipes/quickstart.yaml), or use --resume RUN_DIR")
        return load_resolved(recipe, set_)
    if recipe is not None:
        raise ToolkitError("give either a RECIPE or --resume RUN_DIR, not both (the run folder holds its recipe)")
    bad = [s for s in set_ if not s.startswith("train.")]
    if bad:
        raise ToolkitError(f"--resume only allows train.* overrides (e.g. train.steps), got: {', '.join(bad)}")
    run = RunDir(resume)
    run.check_resumable()
    source = run.recipe
    recipe = parse_recipe(apply_overrides(read_yaml(source), set_), str(source))
    _name_missing_plugins(recipe, run.resume)
    return resolve(recipe, str(source))


def _name_missing_plugins(recipe, resume_file: Path) -> None:
    """A run that needs a plugin not installed here: name it and its distribution (from the resume file)."""
    from ..checkpoint import missing_plugin, read_meta
    from ..plugins import registry

    used = [("dataset", recipe.data.dataset), ("network", recipe.model.network)] + [("loss", n) for n in recipe.losses]
    for kind, name in used:
        if name not in registry(kind):
            raise ToolkitError(f"cannot resume {resume_file.parent}: {missing_plugin(read_meta(resume_file), kind, name)}")


def _join(world, device: str) -> None:
    """Under torchrun: join the process group (gloo for CPU, NCCL for CUDA)."""
    from .. import distributed

    distributed.init(world, distributed.pick_device(distributed.device_for(world, device)))


def _launch(nproc: int, resolved, recipe, set_, out, resume, device, dry_run) -> None:
    """Re-run this command under torchrun on ``nproc`` processes of this machine."""
    import subprocess
    import sys

    # the checks every rank would make, made once here (a rank's error is one line among N)
    made = None
    if resume is None:
        if out is None:  # one folder for every rank, made here
            made = RunDir.new(resolved.name, create=not dry_run)
            out = made.path
        RunDir(out).check_free()
    if resolved.optim.batch_size % nproc:
        raise ToolkitError(f"optim.batch_size {resolved.optim.batch_size} does not split evenly over {nproc} processes")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "toolkit", "train"]
    args += [str(recipe)] if recipe is not None else []
    for item in set_:
        args += ["--set", item]
    args += ["--out", str(out)] if out is not None else []
    args += ["--resume", str(resume)] if resume is not None else []
    args += ["--device", device] if device else []
    args += ["--dry-run"] if dry_run else []
    code = subprocess.call(args)
    if made is not None and not dry_run:
        made.abandon()  # the folder it made, when the run left it empty
    if code:
        raise typer.Exit(code)


def train_run(recipe, run_dir: Path, *, device: str = "auto", resume: bool = False, dry_run: bool = False,
              world=None) -> None:
    """Train a resolved recipe into ``run_dir`` with progress on the console, as ``toolkit train`` does.

    ``resume``: continue the run in ``run_dir`` from its resume file; ``dry_run``: print the
    resolved recipe and latent spec, train nothing. An interrupted run exits with the signal's
    conventional code (after saving).
    """
    from rich.console import Console

    from .. import distributed
    from ..recipe import to_yaml
    from ..train import Trainer
    from .progress import progress

    world = world or distributed.World()
    console = Console(stderr=True, soft_wrap=True, quiet=not world.is_main)
    device = distributed.device_for(world, device)
    trainer = Trainer(recipe, run_dir, device, world=world)
    if dry_run:
        if world.is_main:
            typer.echo(to_yaml(recipe), nl=False)
            typer.echo("# latent spec\n# " + trainer.spec.describe().replace("\n", "\n# "))
            typer.echo(f"# run folder: {run_dir}; device: {trainer.device}; images {trainer.image_shape}")
        distributed.barrier(world)  # the ranks leave together, as at the end of Trainer.run
        return
    if resume:
        notes = trainer.load_resume()
        console.print(f"resuming {run_dir} at step {trainer.step}")
        for note in notes:
            console.print(f"note: {note}")
        if trainer.step >= recipe.train.steps and trainer.folder.evaluated_at(trainer.step):
            # finished and evaluated: training, evaluating or saving again would only repeat rows
            console.print(f"nothing to do: {run_dir} is at step {trainer.step} of train.steps={recipe.train.steps} "
                          f"and evaluated; to train longer: toolkit train --resume {run_dir} "
                          f"--set train.steps={trainer.step + recipe.train.steps}")
            return
    where = f"{world.size} processes ({trainer.device.type})" if world.distributed else str(trainer.device)
    console.print(f"training '{recipe.name}' on {where} -> {run_dir}")
    judge = recipe.evaluate.classifier_path()
    if judge is not None and not judge.is_file():
        console.print(f"note: classifier {judge} not found, so generator error is not measured during training "
                      f"(toolkit classifier train --help)")
    with progress(console, "train", recipe.train.steps, completed=trainer.step) as bar:

        def update(step: int, losses: dict):
            bar.update(step, info=" ".join(f"{k}={v:.3f}" for k, v in losses.items()))

        result = trainer.run(progress=update)
    status = "interrupted, saved" if result["interrupted"] else "done"
    console.print(f"{status}: step {result['step']} in {result['seconds']} s; checkpoint {result['checkpoint']}")
    for line in evaluation_lines(result.get("evaluation") or {}, trainer.folder.best):
        console.print(line)
    if result["interrupted"]:
        console.print(f"continue with: toolkit train --resume {run_dir}")
        raise typer.Exit(128 + int(result["signal"]))  # the convention: 130 for Ctrl-C, 143 for SIGTERM
