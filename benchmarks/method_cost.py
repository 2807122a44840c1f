"""What each method option costs per training step, as a ratio to the recipe without it.

    OMP_NUM_THREADS=1 python benchmarks/method_cost.py [--recipe recipes/quickstart.yaml] [--steps 20] [--repeats 3]

Builds one :class:`toolkit.train.Trainer` per option set from the recipe plus ``--set``-style
overrides (the options below), on the recipe's own data, and times ``train_step`` in blocks
of ``--steps`` steps after ``--warmup`` steps; the option sets take turns block by block (so a
noisy machine slows them alike) and the median block is reported, with its ratio to ``base``.
Prints a markdown table and appends it to ``--output`` (default benchmarks/RESULTS.md).
Steps to quality are in docs/RESULTS.md; this is the other half of the trade.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

OPTIONS = {
    "base": [],
    "consistency (FixMatch)": ["losses.consistency.weight=10"],
    "r1 every 4": ["losses.r1.weight=1"],
    "r1 every step": ["losses.r1.weight=1", "losses.r1.options.every=1"],
    "d_augment translation+cutout": ["train.d_augment=[translation,cutout]"],
    "spectral norm in D": ["model.options.d_spectral_norm=true"],
    "projection discriminator": ["model.options.d_projection=true"],
    "hinge loss": ["losses.adv.options.form=hinge"],
    "ema 0.99": ["train.ema=0.99"],
    "info supervised_by labels": ["losses.info.options.supervised_by=labels"],
    "info on translations": ["losses.info.options.translations=true"],
    "info augment translation+blur+noise": ["losses.info.options.augment=[translation,blur,noise]"],
    "consistency strong view with affine": ["losses.consistency.weight=10",
                                            "losses.consistency.options.strong=[affine,translation,cutout,brightness,contrast]"],
    "consistency teacher averaged": ["losses.consistency.weight=10", "losses.consistency.options.teacher=averaged",
                                     "train.ema=0.99"],
    "sup augment affine+translation": ["losses.sup.options.augment=[affine,translation]"],
    "G upsampling nearest (resize)": ["model.options.g_upsampling=resize"],
    "G upsampling bilinear": ["model.options.g_upsampling=bilinear"],
    "consistency SoftMatch weighting + prior alignment": ["losses.consistency.weight=10",
                                                          "losses.consistency.options.weighting=soft",
                                                          "losses.consistency.options.alignment=prior"],
    "consistency for faces (flip; affine and cutout strong)": [
        "losses.consistency.weight=10", "losses.consistency.options.threshold=0.9",
        "losses.consistency.options.weak=[flip,translation]",
        "losses.consistency.options.strong=[flip,affine,translation,cutout]"],
    "consistency unlabeled_ratio 3": ["losses.consistency.weight=10", "losses.consistency.options.unlabeled_ratio=3"],
    "consistency unlabeled_ratio 7": ["losses.consistency.weight=10", "losses.consistency.options.unlabeled_ratio=7"],
    "labeled floor 0.2": ["data.labeled_floor=0.2"],
    "D code hard (straight-through)": ["train.d_code=hard"],
    "D code labels": ["train.d_code=labels"],
    "rec code labels": ["losses.rec.options.code=labels"],
    "mode seeking (MSGAN)": ["losses.mode_seeking.weight=1"],
    "D batch joint": ["train.d_batch=joint"],
    "lr_d 1e-3": ["optim.lr_d=1e-3"],
    "batch 128": ["optim.batch_size=128"],
    "E width 0.5": ["model.options.e_width=0.5"],
    "E width 1": ["model.options.e_width=1"],
    "E width 2": ["model.options.e_width=2"],
    "VAT weight 10": ["losses.vat.weight=10"],
    "E max pooling": ["model.options.e_downsampling=maxpool"],
    "E max pooling and ReLU": ["model.options.e_downsampling=maxpool", "model.options.e_activation=relu"],
    "quickstart additions together": ["losses.consistency.weight=10", "losses.consistency.options.threshold=0.9",
                                      "train.ema=0.99", "data.labeled_floor=0.2", "train.d_augment=[translation,cutout]",
                                      "optim.lr_d=1e-3"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/quickstart.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated option names (default: all; names hold no commas)")
    parser.add_argument("--set", action="append", default=[], help="an override for every option set")
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args(argv)

    import torch

    from toolkit.plugins import load_resolved
    from toolkit.train import Trainer

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(OPTIONS)
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        parser.error(f"--only: unknown option set '{unknown[0]}' (valid: {', '.join(OPTIONS)})")
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            recipe = load_resolved(args.recipe, [*args.set, *OPTIONS[name], "train.device=cpu"])
            trainer = Trainer(recipe, Path(tmp) / name.replace(" ", "_"), "cpu")
            for step in range(1, args.warmup + 1):
                trainer.step = step
                trainer.train_step(step)
            trainer.read_losses()
            trainers[name] = trainer
        blocks = {name: [] for name in names}
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    trainer.step += 1
                    trainer.train_step(trainer.step)
                trainer.read_losses()
                blocks[name].append((time.perf_counter() - started) / args.steps)
    base = statistics.median(blocks[names[0]])
    lines = [f"### Method options: cost per step ({datetime.date.today()}, {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} thread(s), torch {torch.__version__})",
             "",
             f"`OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/method_cost.py --recipe {args.recipe} "
             f"--steps {args.steps} --repeats {args.repeats}` (median of {args.repeats} blocks of {args.steps} steps; "
             "ratio to the first row)",
             "",
             "| option | ms per step | ratio |",
             "|---|---:|---:|"]
    for name in names:
        t = statistics.median(blocks[name])
        lines.append(f"| {name} | {1000 * t:.0f} | {t / base:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
