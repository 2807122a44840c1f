"""How long should the weight average be? Several averages of one training, judged side by side.

    OMP_NUM_THREADS=1 python benchmarks/average_horizon.py recipes/quickstart.yaml --seed 0 \
        --averages 0.99,r5,r3,r2 --every 300 [--set KEY=VALUE] [--out DIR]

Trains the recipe once (its own ``train.ema`` switched off: training never reads the averages, so
the run is the recipe's run) and keeps one average of G's and E's weights per entry of
``--averages``: a number ``d`` is ``train.ema: d`` as the trainer does it (decay min(d, (1 +
step)/(10 + step)), toolkit/ema.py), ``rK`` an average over about the last step/K steps (decay 1 -
K/(step + K)). Every ``--every`` steps each average is evaluated with the recipe's protocol
(``evaluate.classifier``, ``evaluate.samples_per_class``; the trainer's full evaluation, BatchNorm
statistics re-estimated), a line is printed and DIR/averages.json is written: ``{average: {step:
{"generator_error", "translation_accuracy", "encoder_accuracy"}}}`` (fractions in [0, 1]; generator
error and translation accuracy only with the recipe's judge). Results: docs/RESULTS.md (quickstart,
"Longer weight averages").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def parse_averages(text: str) -> list[str]:
    """``0.99,r5`` -> ``["0.99", "r5"]``; raises ValueError naming a malformed entry."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise ValueError("--averages: name at least one average (e.g. 0.99,r3)")
    for name in names:
        horizon = name.startswith("r")
        try:
            value = float(name[1:] if horizon else name)
        except ValueError:
            value = float("nan")
        if not (value > 0 if horizon else 0 < value < 1):  # nan fails both
            raise ValueError(f"--averages: '{name}' is neither a decay in (0, 1) nor rK with K > 0")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--averages", default="0.99,r5,r3,r2", help="decays d and horizons rK, comma-separated")
    parser.add_argument("--every", type=int, default=300, help="evaluate every this many steps")
    parser.add_argument("--set", action="append", default=[], help="a recipe override KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    try:
        names = parse_averages(args.averages)
    except ValueError as err:
        parser.error(str(err))

    from toolkit.ema import WeightAverage
    from toolkit.plugins import load_resolved
    from toolkit.train import Trainer

    class Horizon(WeightAverage):
        """An average over about the last step/K steps (``decay_at`` replaces the fixed decay)."""

        def __init__(self, modules, k: float):
            super().__init__(modules, 0.5)  # the decay is never read: decay_at below
            self.k = k

        def decay_at(self, step: int) -> float:
            return 1.0 - self.k / (step + self.k)

    recipe = load_resolved(args.recipe, [f"seed={args.seed}", *args.set, "train.device=cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        trainer = Trainer(recipe, out, "cpu")
        parts = trainer.networks.ge_parts()
        averages = {n: Horizon(parts, float(n[1:])) if n.startswith("r") else WeightAverage(parts, float(n)) for n in names}
        trainer.folder.create()
        trainer.average = None  # the averages here are this script's; training is the recipe's
        results: dict = {}
        for step in range(1, recipe.train.steps + 1):
            trainer.step = step
            trainer.train_step(step)
            for average in averages.values():
                average.update(step)
            if step % args.every and step != recipe.train.steps:
                continue
            for name, average in averages.items():
                trainer.average, trainer._inference = average, None
                record = trainer.full_evaluation()
                trainer.average = None
                results.setdefault(name, {})[step] = {
                    "generator_error": record.get("generator_error"),
                    "translation_accuracy": record.get("translation_accuracy"),
                    "encoder_accuracy": record.get("encoder_accuracy", {})}
            shown = {n: r[step]["generator_error"] for n, r in results.items()}
            print(f"step {step}: generator error " + ", ".join(
                f"{n} {100 * v:.1f}%" if v is not None else f"{n} -" for n, v in shown.items()), flush=True)
            (out / "averages.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
