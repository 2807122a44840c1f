"""Several seeds and label counts of one recipe, one table (as in the paper's Table II).

Runs go to ``OUT/labels-L/seed-S``. An interrupted sweep picks up where it stopped: finished
runs are skipped, unfinished ones resumed, evaluations reused from their JSON reports.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .images import atomic_write
from .rundir import RunDir


def run_dir(out: Path, labels, seed: int) -> RunDir:
    return RunDir(Path(out) / f"labels-{labels}" / f"seed-{seed}")


def state(run: RunDir, steps: int) -> str:
    """'done', 'partial' (resume it) or 'new'."""
    if run.checkpoint(steps).is_file():
        return "done"
    return "partial" if run.can_resume() else "new"


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def summarise(reports: dict) -> dict:
    """``{labels: [report, ...]}`` -> mean and std per label count."""
    summary = {}
    for labels, items in reports.items():
        row = {}
        errors = [r["generator_error"]["overall"] for r in items if "generator_error" in r]
        if errors:
            row["generator_error"] = mean_std(errors)
        translations = [r["translation_accuracy"]["overall"] for r in items if "translation_accuracy" in r]
        if translations:
            row["translation_accuracy"] = mean_std(translations)
        best = [r["best"]["generator_error"] for r in items if "best" in r]
        if best and len(best) == len(items):
            row["best_checkpoint.generator_error"] = mean_std(best)
        names = sorted({k for r in items for k in r["encoder_accuracy"]})
        for name in names:
            row[f"encoder_accuracy.{name}"] = mean_std([r["encoder_accuracy"][name] for r in items if name in r["encoder_accuracy"]])
        row["seeds"] = [r.get("seed") for r in items]
        summary[str(labels)] = row
    return summary


def markdown(summary: dict) -> str:
    metrics = sorted({k for row in summary.values() for k in row if k != "seeds"})
    lines = ["| labels | runs | " + " | ".join(f"{m} (%)" for m in metrics) + " |",
             "|---" * (len(metrics) + 2) + "|"]
    for labels, row in summary.items():
        cells = []
        for m in metrics:
            value = row.get(m)
            cells.append(f"{100 * value['mean']:.2f} +- {100 * value['std']:.2f}" if value else "-")
        lines.append(f"| {labels} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean +- std over the runs, of the final checkpoint; best_checkpoint: of each run's evaluated "
                 "checkpoint with the lowest generator error.")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict) -> tuple[Path, Path]:
    out = Path(out)
    atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(markdown(summary)))
    return out / "summary.json", out / "summary.md"
