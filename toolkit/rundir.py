"""The run folder: the one place that knows its layout.

    RUN/recipe.yaml                          the resolved recipe
    RUN/metrics.jsonl                        losses and evaluations, one JSON record a line
    RUN/tensorboard/                         the same as TensorBoard events
    RUN/samples/step-NNNNNN.png              sample grids from fixed latents
    RUN/checkpoints/step-NNNNNN.safetensors  self-describing checkpoints (``toolkit generate -c``)
    RUN/checkpoints/step-NNNNNN.eval.json    their evaluation reports (``toolkit evaluate``)
    RUN/resume.safetensors                   optimiser, RNG and sampler state (``toolkit train --resume``)
    RUN/best.safetensors, RUN/best.json      the evaluated checkpoint with the lowest generator error so far
                                             (the paper's protocol keeps the best), and its figures

Everything else (the trainer, the CLI, sweeps, scripts) asks a :class:`RunDir`.
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import CheckpointError, ToolkitError
from .outputs import output_folder

RESUME_FILE = "resume.safetensors"
RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
CHECKPOINT_GLOB = "step-*.safetensors"
REPORT_SUFFIX = ".eval.json"  # an evaluation report sits beside its checkpoint


def report_path(checkpoint: str | Path) -> Path:
    """Where the evaluation report of a checkpoint goes."""
    return Path(checkpoint).with_suffix(REPORT_SUFFIX)


class RunDir:
    """Paths of one run folder, and what it holds."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- paths -----------------------------------------------------------------------------
    @property
    def recipe(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def resume(self) -> Path:
        return self.path / RESUME_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def best(self) -> Path:
        """The checkpoint with the lowest generator error among the run's evaluations."""
        return self.path / "best.safetensors"

    @property
    def best_record(self) -> Path:
        """JSON: the step and the figures of :attr:`best`."""
        return self.path / "best.json"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:06d}.safetensors"

    def sample(self, step: int) -> Path:
        return self.path / "samples" / f"step-{step:06d}.png"

    # -- what it holds ---------------------------------------------------------------------
    def checkpoint_files(self) -> list[Path]:
        """The step checkpoints, oldest first."""
        return sorted(self.checkpoints.glob(CHECKPOINT_GLOB))

    def reports(self) -> list[Path]:
        """The evaluation reports of the checkpoints, oldest first."""
        return sorted(self.checkpoints.glob(f"*{REPORT_SUFFIX}"))

    def newest_checkpoint(self) -> Path | None:
        found = self.checkpoint_files()
        return found[-1] if found else None

    def checkpoint_before(self, step: int) -> Path | None:
        """The newest step checkpoint written before ``step`` (what a stopped run can fall back to)."""
        good = [p for p in self.checkpoint_files() if _step_of(p) is not None and _step_of(p) < step]
        return good[-1] if good else None

    def can_resume(self) -> bool:
        return self.resume.is_file()

    def held(self) -> list[str]:
        """The names of this folder's entries that belong to a run."""
        names = (RESUME_FILE, RECIPE_FILE, METRICS_FILE, CHECKPOINTS)
        return [name for name in names if (self.path / name).exists()]

    def check_free(self) -> None:
        """A new run may not write into a folder that holds another run (or that cannot be written)."""
        output_folder(self.path, "--out")  # a file, or a folder that cannot be made or written
        held = self.held()
        if held:
            how = f"--resume {self.path} or another --out" if RESUME_FILE in held else "another --out (or delete it)"
            raise ToolkitError(f"{self.path} already holds a run ({', '.join(held)}); use {how}")

    def check_resumable(self) -> None:
        if not self.can_resume():
            raise ToolkitError(f"{self.path}: no {RESUME_FILE} here, nothing to resume")

    # -- creating --------------------------------------------------------------------------
    @classmethod
    def new(cls, name: str, root: str | Path = "runs") -> "RunDir":
        """``ROOT/NAME-TIMESTAMP`` (with ``-2``, ``-3``, ... when that folder exists)."""
        base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return cls(path)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)


def _step_of(checkpoint: Path) -> int | None:
    try:
        return int(checkpoint.stem.split("-")[1])
    except (IndexError, ValueError):
        return None


def newest_checkpoint(root: str | Path = "runs") -> Path:
    """The most recently written checkpoint of any run under ``root``."""
    # hidden names are skipped: macOS's AppleDouble "._step-...", the toolkit's own half-written ".step-..." files
    found = [p for p in Path(root).glob(f"**/{CHECKPOINTS}/*.safetensors")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if not found:
        raise CheckpointError(f"no checkpoint found under ./{root}; train one first or pass -c CKPT")
    return max(found, key=lambda p: p.stat().st_mtime)
