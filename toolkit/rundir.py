"""The run folder: the one place that knows its layout.

    RUN/recipe.yaml                          the resolved recipe
    RUN/metrics.jsonl                        losses and evaluations, one JSON record a line
    RUN/tensorboard/                         the same as TensorBoard events
    RUN/samples/step-NNNNNN.png              sample grids from fixed latents
    RUN/checkpoints/step-NNNNNN.safetensors  self-describing checkpoints (``toolkit generate -c``)
    RUN/checkpoints/step-NNNNNN.eval.json    their evaluation reports (``toolkit evaluate``)
    RUN/resume.safetensors                   optimiser, RNG and sampler state (``toolkit train --resume``)

Everything else (the trainer, the CLI, sweeps, scripts) asks a :class:`RunDir`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import CheckpointError, ToolkitError
from .files import atomic_write

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

    def can_resume(self) -> bool:
        return self.resume.is_file()

    def held(self) -> list[str]:
        """The names of this folder's entries that belong to a run."""
        names = (RESUME_FILE, RECIPE_FILE, METRICS_FILE, CHECKPOINTS)
        return [name for name in names if (self.path / name).exists()]

    def keep_metrics_until(self, step: int) -> None:
        """Drop the metrics rows of steps after ``step`` (and a torn last line): a run resumed from
        ``step`` writes them again."""
        if not self.metrics.is_file():
            return
        lines = self.metrics.read_text().splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if line.endswith("\n") and isinstance(row, dict) and row.get("step", 0) <= step:
                kept.append(line)
        if kept != lines:
            atomic_write(self.metrics, lambda tmp: tmp.write_text("".join(kept)))

    def check_free(self) -> None:
        """A new run may not write into a folder that holds another run."""
        if self.path.exists() and not self.path.is_dir():
            raise ToolkitError(f"--out {self.path}: is a file, not a folder")
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


def newest_checkpoint(root: str | Path = "runs") -> Path:
    """The most recently written checkpoint of any run under ``root``."""
    found = [p for p in Path(root).glob(f"**/{CHECKPOINTS}/*.safetensors") if p.is_file()]
    if not found:
        raise CheckpointError(f"no checkpoint found under ./{root}; train one first or pass -c CKPT")
    return max(found, key=lambda p: p.stat().st_mtime)
