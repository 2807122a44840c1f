"""Measure what ``train.ema`` changes: the same run judged with averaged and with raw weights.

    python benchmarks/ema_effect.py RUN_DIR --classifier C.safetensors [--classifier ...] [--n 500]

Training never uses the averages, so one run holds both models: its resume file has the raw
weights of its last step and the averages. Each is evaluated as ``toolkit evaluate`` does
(BatchNorm statistics re-estimated for it, ``--n`` images per class, seed 0), once per judge,
and its figures are written; the reports go to RUN_DIR/ema-effect/{ema,raw}/ as JSON and PNG,
and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder whose recipe had train.ema > 0")
    parser.add_argument("--classifier", action="append", default=[], help="judge(s) of the generator")
    parser.add_argument("--n", type=int, default=500, help="generated images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from toolkit.data import load_dataset
    from toolkit.evaluate import evaluate
    from toolkit.figures import make_figures
    from toolkit.model import Model
    from toolkit.plugins import resolve
    from toolkit.recipe import load_recipe
    from toolkit.train import Trainer

    recipe = resolve(load_recipe(args.run / "recipe.yaml"))
    if not recipe.train.ema:
        print(f"{args.run}: its recipe has train.ema = 0, so there are no averages to compare", file=sys.stderr)
        return 2
    trainer = Trainer(recipe, args.run, "cpu")
    trainer.load_resume()
    test = load_dataset(recipe, "test")
    rows = []
    for label in ("ema", "raw"):
        nets = trainer.inference_networks(averaged=label == "ema")
        model = Model(trainer.spec, nets, recipe, trainer.image_shape, trainer.step)
        out = args.run / "ema-effect" / label
        make_figures(model, test, out, seed=args.seed)
        for judge in args.classifier or [None]:
            report = evaluate(model, judge, args.n, args.seed, test=test)
            name = Path(judge).stem if judge else "no-judge"
            (out / f"{name}.json").write_text(json.dumps(report, indent=2))
            gen = report.get("generator_error", {}).get("overall")
            trans = report.get("translation_accuracy", {}).get("overall")
            rows.append((label, name, gen, trans, report["encoder_accuracy"], report["reconstruction_mse"]))
    print(f"{args.run} at step {trainer.step} ({args.n} per class, seed {args.seed})")
    print("| weights | judge | generator error | translation accuracy | encoder accuracy | reconstruction MSE |")
    print("|---|---|---:|---:|---|---:|")
    def fmt(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    for label, name, gen, trans, enc, mse in rows:
        accs = ", ".join(f"{k} {100 * v:.1f}%" for k, v in enc.items())
        print(f"| {label} | {name} | {fmt(gen)} | {fmt(trans)} | {accs} | {mse:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
