"""Compare recipes over seeds: learning curves (mean +- std) against steps and wall time, and a table.

    python docs/compare_runs.py NAME=SWEEP_DIR [NAME=SWEEP_DIR ...] --step 1200 -o docs/quickstart-curves.png

Each SWEEP_DIR is a ``toolkit sweep`` folder (``labels-L/seed-S/`` run folders) or a folder of
``seed-S/`` run folders (``toolkit train ... --out DIR/seed-S``). The curves
are read from each run's ``metrics.jsonl`` (evaluation records: ``evaluate.every`` and the
checkpoints); the wall time of an evaluation is that of the last log record before it. Only
steps that every seed of a group evaluated are plotted. The table gives, at ``--step``, mean
+- std over the seeds of the generator error, translation accuracy and encoder accuracy of
the checkpoint at that step, and the best checkpoint's generator error (the lowest among the
run's evaluations up to that step, what ``best.json`` holds when the run ends there), with the
number of seeds. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = (("generator_error", "generator error (%)"), ("translation_accuracy", "translation accuracy (%)"),
           ("encoder_accuracy", "encoder accuracy (%)"))


def run_curves(run: Path) -> dict[int, dict]:
    """step -> {metric: value, "time": seconds} for one run folder."""
    found, last_time = {}, 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "time" in record:
            last_time = record["time"]
        if "generator_error" in record:
            enc = record.get("encoder_accuracy", {})
            found[record["step"]] = {"generator_error": record["generator_error"],
                                     "translation_accuracy": record.get("translation_accuracy"),
                                     "encoder_accuracy": next(iter(enc.values())) if enc else None,
                                     "time": last_time}
    return found


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", metavar="NAME=SWEEP_DIR")
    parser.add_argument("--step", type=int, required=True, help="the step of the table")
    parser.add_argument("-o", "--output", type=Path, default=Path("curves.png"))
    args = parser.parse_args(argv)

    groups = {}
    for item in args.groups:
        name, _, folder = item.partition("=")
        runs = sorted(Path(folder).glob("labels-*/seed-*")) or sorted(Path(folder).glob("seed-*"))
        groups[name] = {run: run_curves(run) for run in runs if (run / "metrics.jsonl").is_file()}
        if not groups[name]:
            parser.error(f"{item}: no run folders with metrics.jsonl in {folder}/labels-*/seed-* or {folder}/seed-*")

    print("| recipe | seeds | generator error (%) | translation accuracy (%) | encoder accuracy (%) "
          "| best checkpoint's generator error (%) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in groups.items():
        at = [curves[args.step] for curves in runs.values() if args.step in curves]
        cells = []
        for key, _ in METRICS:
            values = [100 * p[key] for p in at if p.get(key) is not None]
            cells.append("{:.1f} +- {:.1f}".format(*mean_std(values)) if values else "-")
        best = [100 * min(p["generator_error"] for step, p in curves.items() if step <= args.step)
                for curves in runs.values() if args.step in curves]
        best_cell = "{:.1f} +- {:.1f}".format(*mean_std(best)) if best else "-"
        print(f"| {name} | {len(at)} | " + " | ".join(cells) + f" | {best_cell} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), dpi=100)
    for index, (name, runs) in enumerate(groups.items()):
        steps = sorted(set.intersection(*(set(c) for c in runs.values()))) if runs else []
        for col, (key, label) in enumerate(METRICS):
            rows = [(s, [100 * runs[r][s][key] for r in runs if runs[r][s].get(key) is not None],
                     statistics.fmean(runs[r][s]["time"] for r in runs)) for s in steps]
            rows = [(s, v, t) for s, v, t in rows if v]
            if not rows:
                continue
            mean = [statistics.fmean(v) for _, v, _ in rows]
            std = [statistics.stdev(v) if len(v) > 1 else 0.0 for _, v, _ in rows]
            for ax, xs in ((axes[0, col], [s for s, _, _ in rows]), (axes[1, col], [t / 60 for _, _, t in rows])):
                ax.plot(xs, mean, "o-", color=f"C{index}", label=f"{name} ({len(runs)} seeds)")
                ax.fill_between(xs, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                                color=f"C{index}", alpha=0.2)
                ax.set_ylabel(label)
                ax.grid(True, alpha=0.3)
    for col in range(3):
        axes[0, col].set_xlabel("training step")
        axes[1, col].set_xlabel("wall time (min, the runs side by side on one machine)")
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
