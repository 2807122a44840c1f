"""Progress of long work: a live bar in a terminal, plain lines in logs (nohup, Slurm, CI).

Rich draws nothing when stderr is not a terminal, so a job whose output goes to a file would
be silent for hours. There :class:`LineProgress` prints one line every ``interval`` seconds
and one at the end: ``train 1200/6000 1.02 it/s 0:19:40 eta 1:18:00 sup=0.061 ...``.
"""

from __future__ import annotations

import time
from datetime import timedelta


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class LineProgress:
    """Plain-text progress for logs: ``update`` prints at most once per ``interval`` seconds."""

    def __init__(self, console, label: str, total: int | None, completed: int = 0, interval: float = 30.0):
        self.console, self.label, self.total, self.interval = console, label, total, interval
        self.start_done, self.started = completed, time.time()
        self.completed, self.info, self.last_print = completed, "", self.started

    def update(self, completed: int, total: int | None = None, info: str = "") -> None:
        self.completed, self.total, self.info = completed, total if total is not None else self.total, info
        now = time.time()
        if now - self.last_print >= self.interval or (self.total is not None and completed >= self.total):
            self.print(now)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def print(self, now: float | None = None) -> None:
        now = now or time.time()
        self.last_print = now
        elapsed = now - self.started
        rate = (self.completed - self.start_done) / max(elapsed, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        eta = ""
        if self.total is not None and rate > 0:
            eta = f" eta {_clock((self.total - self.completed) / rate)}"
        self.console.print(f"{self.label} {self.completed}{of} {rate:.2f} it/s {_clock(elapsed)}{eta} {self.info}".rstrip(),
                           highlight=False, markup=False)


class BarProgress:
    """Rich's live bar with the same ``update`` as :class:`LineProgress`."""

    def __init__(self, console, label: str, total: int | None, completed: int = 0):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
        self.bar = Progress(*columns, console=console, transient=False)
        self.task = self.bar.add_task(label, total=total, completed=completed, info="", rate="")
        self.start_done, self.started = completed, time.time()

    def update(self, completed: int, total: int | None = None, info: str = "") -> None:
        rate = (completed - self.start_done) / max(time.time() - self.started, 1e-9)
        if total is not None:
            self.bar.update(self.task, total=total)
        self.bar.update(self.task, completed=completed, info=info, rate=f"{rate:.2f} it/s")

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


def progress(console, label: str, total: int | None, completed: int = 0, interval: float = 30.0):
    """A context manager with ``update(completed, total=None, info="")``: a bar or log lines."""
    if console.is_terminal:
        return BarProgress(console, label, total, completed)
    return LineProgress(console, label, total, completed, interval)
