"""Plot a run's learning curve: generator error and encoder accuracy against steps.

Reads the evaluation reports written by ``toolkit evaluate`` next to each checkpoint
(``checkpoints/step-*.eval.json``) and any evaluation records in ``metrics.jsonl``.

    python docs/learning_curve.py RUN_DIR -o docs/mnist-learning-curve.png

Needs matplotlib (``pip install matplotlib``).
"""

import argparse
import json
from pathlib import Path


def points(run: Path) -> dict[int, dict]:
    found: dict[int, dict] = {}
    metrics = run / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "generator_error" in record or "encoder_accuracy" in record:
                found.setdefault(record["step"], {}).update(record)
    for path in sorted((run / "checkpoints").glob("*.eval.json")):
        report = json.loads(path.read_text())
        entry = found.setdefault(report["step"], {})
        entry["encoder_accuracy"] = report["encoder_accuracy"]
        if "generator_error" in report:
            entry["generator_error"] = report["generator_error"]["overall"]
    return dict(sorted(found.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("learning-curve.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = points(args.run)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    steps = [s for s, p in data.items() if "generator_error" in p]
    if steps:
        ax.plot(steps, [100 * data[s]["generator_error"] for s in steps], "o-", label="generator error (%)")
    for name in sorted({k for p in data.values() for k in p.get("encoder_accuracy", {})}):
        enc = [s for s, p in data.items() if name in p.get("encoder_accuracy", {})]
        ax.plot(enc, [100 * (1 - data[s]["encoder_accuracy"][name]) for s in enc], "s--", label=f"encoder error, {name} (%)")
    ax.set_xlabel("training step")
    ax.set_ylabel("% (lower is better)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(args.run.name)
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
