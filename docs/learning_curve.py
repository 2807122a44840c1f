"""Plot runs' learning curves: generator error and encoder error against steps.

Reads the evaluation reports written by ``toolkit evaluate`` next to each checkpoint
(``checkpoints/step-*.eval.json``) and any evaluation records in ``metrics.jsonl``.

    python docs/learning_curve.py RUN_DIR [RUN_DIR ...] -o docs/mnist-learning-curve.png

Several runs share one plot, one colour each (generator error solid, encoder error dashed).

Needs matplotlib (``pip install matplotlib``).
"""

import argparse
import json
from pathlib import Path

from toolkit.rundir import RunDir


def points(run: Path) -> dict[int, dict]:
    found: dict[int, dict] = {}
    folder = RunDir(run)
    if folder.metrics.is_file():
        for line in folder.metrics.read_text().splitlines():
            record = json.loads(line)
            if "generator_error" in record or "encoder_accuracy" in record:
                found.setdefault(record["step"], {}).update(record)
    for path in folder.reports():
        report = json.loads(path.read_text())
        entry = found.setdefault(report["step"], {})
        entry["encoder_accuracy"] = report["encoder_accuracy"]
        if "generator_error" in report:
            entry["generator_error"] = report["generator_error"]["overall"]
    return dict(sorted(found.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("-o", "--output", type=Path, default=Path("learning-curve.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for index, run in enumerate(args.runs):
        data = points(run)
        colour = f"C{index}"
        prefix = f"{run.name}: " if len(args.runs) > 1 else ""
        steps = [s for s, p in data.items() if "generator_error" in p]
        if steps:
            ax.plot(steps, [100 * data[s]["generator_error"] for s in steps], "o-", color=colour,
                    label=f"{prefix}generator error")
        for name in sorted({k for p in data.values() for k in p.get("encoder_accuracy", {})}):
            enc = [s for s, p in data.items() if name in p.get("encoder_accuracy", {})]
            ax.plot(enc, [100 * (1 - data[s]["encoder_accuracy"][name]) for s in enc], "s--", color=colour,
                    label=f"{prefix}encoder error, {name}")
    ax.set_xlabel("training step")
    ax.set_ylabel("% (lower is better)")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(", ".join(run.name for run in args.runs))
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
