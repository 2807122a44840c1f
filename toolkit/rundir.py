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

import json
import os
import shutil
import time
from pathlib import Path

from .errors import CheckpointError, ToolkitError
from .files import atomic_write

try:
    import fcntl
except ImportError:  # Windows: no folder locks (the free-folder check still holds)
    fcntl = None
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
        self._made = False  # this process made the folder (reserve / new)
        self._lock = None  # the folder's open descriptor while this process holds its lock

    def __getstate__(self):  # sent to other processes (torchrun ranks) without the lock
        return {"path": self.path, "_made": False, "_lock": None}

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

    def metrics_rows(self) -> list[tuple[str, dict]]:
        """metrics.jsonl as ``(line, record)`` pairs, lines with their newline; a line that is not
        a JSON object (a torn write) is left out."""
        if not self.metrics.is_file():
            return []
        rows = []
        for line in self.metrics.read_text().splitlines(keepends=True):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append((line, row))
        return rows

    def evaluated_at(self, step: int) -> bool:
        """Whether metrics.jsonl holds an evaluation (encoder accuracy) of ``step``: a finished run's
        final one, written before its last checkpoint."""
        return any(row.get("step") == step and "encoder_accuracy" in row for _, row in self.metrics_rows())

    def seconds_until(self, step: int) -> float:
        """The training time (``time``, seconds) of the last log row at or before ``step``; 0 if none:
        where a resumed run's clock goes on from."""
        times = [float(row["time"]) for _, row in self.metrics_rows() if "time" in row and row.get("step", step + 1) <= step]
        return times[-1] if times else 0.0

    def keep_metrics_until(self, step: int) -> None:
        """Drop the metrics rows of steps after ``step`` (and a torn last line): a run resumed from
        ``step`` writes them again."""
        if not self.metrics.is_file():
            return
        lines = self.metrics.read_text().splitlines(keepends=True)
        kept = [line for line, row in self.metrics_rows() if line.endswith("\n") and row.get("step", 0) <= step]
        if kept != lines:
            atomic_write(self.metrics, lambda tmp: tmp.write_text("".join(kept)))

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

    # -- creating and holding --------------------------------------------------------------
    @classmethod
    def new(cls, name: str, root: str | Path = "runs", create: bool = True) -> "RunDir":
        """``ROOT/NAME-TIMESTAMP``, with ``-2``, ``-3``, ... when that folder exists.

        With ``create`` the folder is made here, atomically: two runs started in the same
        second get two folders.
        """
        base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if create:
            base.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:
            path = base if n == 1 else base.with_name(f"{base.name}-{n}")
            n += 1
            if not create:
                if not path.exists():
                    return cls(path)
                continue
            try:
                path.mkdir()
            except FileExistsError:
                continue
            run = cls(path)
            run._made = True
            return run

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def reserve(self) -> None:
        """Claim this folder for a new run, before anything slow: create it, take its lock (until
        :meth:`release` or the end of the process) and refuse a folder that holds a run."""
        output_folder(self.path, "--out")  # a file, or below one, or a folder that cannot be made or written
        try:
            self.path.mkdir(parents=True)
            self._made = True
        except FileExistsError:
            pass
        try:
            self.lock()
            self.check_free()
        except BaseException:
            self.abandon()
            raise

    def lock(self) -> None:
        """Hold this folder's lock: a second process that trains into it is refused. The lock
        goes with the process (also when it is killed)."""
        if self._lock is not None or fcntl is None:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ToolkitError(f"{self.path} is in use: another process is training into it") from None
        self._lock = fd

    def release(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)

    def abandon(self) -> None:
        """Undo :meth:`reserve` for a run that stopped before it trained anything: remove what it
        wrote (the recipe, the TensorBoard folder), and the folder when it made it and it is left
        empty. Nothing is removed from a folder that holds checkpoints, a resume file or metrics."""
        try:
            if not (self.checkpoints.exists() or self.resume.exists() or self.metrics.exists()):
                self.recipe.unlink(missing_ok=True)
                shutil.rmtree(self.tensorboard, ignore_errors=True)
                if self._made and self.path.is_dir() and not any(self.path.iterdir()):
                    self.path.rmdir()
        finally:
            self.release()


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
