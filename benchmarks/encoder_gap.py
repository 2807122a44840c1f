"""Measure the encoder's gap between generated and real images, for one checkpoint.

    python benchmarks/encoder_gap.py CHECKPOINT [--variable digit] [--n 1000] [--test N]

Prints, for a categorical variable supervised by a label:
- how often E gives generated images the class they were generated with (``--n`` images);
- E's accuracy on the held-out images (the first ``--test``; default all), with E's BatchNorm statistics as saved
  and re-estimated on real images, on real and generated images (as training sees them), and
  on generated images only (32 batches each);
- the confusion matrix on held-out images (rows: true class, columns: E's class).

A high agreement on generated images with a low real accuracy means E learnt G's rendition of
the classes, mistakes included, rather than the data's.
"""

from __future__ import annotations

import argparse
import sys

import torch


def accuracy_and_confusion(model, variable, images, labels) -> tuple[float, torch.Tensor]:
    k = len(variable.classes)
    with torch.no_grad():
        pred = torch.cat([model.networks.encoder(images[i : i + 500].float().div(255))[:, model.spec.slices[variable.name]]
                          .argmax(1) for i in range(0, len(images), 500)])
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    return float((pred == labels).float().mean()), confusion


def reestimate_encoder_norms(model, train_images, real: bool, generated: bool, batches: int = 32) -> None:
    """Cumulative BatchNorm statistics of E from real and/or generated batches of 64."""
    from toolkit.networks import reestimating_norms

    g = torch.Generator().manual_seed(7)
    with torch.no_grad(), reestimating_norms(model.networks.encoder):
        for _ in range(batches):
            if real:
                index = torch.randint(len(train_images), (64,), generator=g)
                model.networks.encoder(train_images[index].float().div(255))
            if generated:
                model.networks.encoder(model.networks.generator(model.spec.sample(64, generator=g)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--variable", help="a labeled categorical variable (default: the first)")
    parser.add_argument("--n", type=int, default=1000, help="generated images")
    parser.add_argument("--test", type=int, help="held-out images (default: all)")
    args = parser.parse_args(argv)

    from toolkit.data import load_dataset
    from toolkit.errors import ToolkitError
    from toolkit.model import load_model

    try:
        model = load_model(args.checkpoint)
        labeled = [v for v in model.spec.supervised if v.kind == "categorical"]
        variable = next((v for v in labeled if v.name == (args.variable or v.name)), None)
        if variable is None:
            raise ToolkitError(f"--variable {args.variable}: not a labeled categorical variable "
                               f"(these are: {', '.join(v.name for v in labeled) or 'none'})")
        test, train = load_dataset(model.recipe, "test"), load_dataset(model.recipe, "train")
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    z = model.spec.sample(args.n, generator=torch.Generator().manual_seed(0))
    wanted = z[:, model.spec.slices[variable.name]].argmax(1)
    with torch.no_grad():
        got = model.networks.encoder(model.networks.generator(z))[:, model.spec.slices[variable.name]].argmax(1)
    print(f"E gives {args.n} generated images their class: {float((got == wanted).float().mean()):.1%}")

    labels = test.labels[variable.label][: args.test]
    known = labels >= 0
    images, labels = test.images[: args.test][known], labels[known]
    accuracy, confusion = accuracy_and_confusion(model, variable, images, labels)
    print(f"E's accuracy on {len(labels)} held-out images, BatchNorm statistics as saved: {accuracy:.1%}")
    for real, generated, name in [(True, False, "real images"), (True, True, "real and generated images"),
                                  (False, True, "generated images")]:
        reestimate_encoder_norms(model, train.images, real, generated)
        print(f"  ... re-estimated on {name}: {accuracy_and_confusion(model, variable, images, labels)[0]:.1%}")
    names = [str(c) for c in variable.classes]
    width = max(5, *(len(n) + 1 for n in names))
    print("confusion on held-out images, statistics as saved (rows: true class, columns: E's class)")
    print(" " * width + "".join(n.rjust(width) for n in names))
    for name, row in zip(names, confusion.tolist()):
        print(name.rjust(width) + "".join(str(v).rjust(width) for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
