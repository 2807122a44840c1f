"""Does a judge call a blob a class? A classifier measured on degraded held-out images.

    python benchmarks/judge_check.py C.safetensors [C2.safetensors ...] [--n 2000]

For each classifier file: its accuracy on the clean test images of the data set it was trained
on (the first ``--n``), then on the same images under a Gaussian blur of sigma 1, 2 and 3 px
(torchvision's ``gaussian_blur``), and on three kinds of images that show no class: uniform
noise, noise blurred at sigma 2 (blobs), and the mean of two test images of different classes.
For each it prints the share judged to be the true class and the share judged to be any class
(the rest were refused: only a classifier trained with ``reject`` refuses). A judge of
generated images should keep its accuracy under a light blur, and call few of the no-class
images a class. Prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classifiers", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=2000, help="test images used")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from torchvision.transforms.v2 import functional as TF

    from toolkit.classifier import load_classifier, predict
    from toolkit.data import derive_attributes
    from toolkit.plugins import registry

    def blur(x, sigma):
        k = 2 * int(3 * sigma) + 1
        return TF.gaussian_blur(x, [k, k], [sigma, sigma])

    print("| judge | test acc. | blur 1 | blur 2 | blur 3 | noise: a class | blobs: a class | ghosts: a class |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.classifiers:
        module, meta = load_classifier(path)
        entry = registry("dataset").get(meta["dataset"])
        test = derive_attributes(entry.build(options=meta["dataset_options"], split="test"), meta.get("attributes") or {})
        labels = test.attribute(meta["attribute"])
        rows = (labels >= 0).nonzero().flatten()[: args.n]
        x, y = test.images[rows].float() / 255, labels[rows]
        g = torch.Generator().manual_seed(args.seed)
        noise = torch.rand(x.shape, generator=g)
        order = torch.randperm(len(x), generator=g)
        other = y != y[order]
        ghosts = ((x + x[order]) / 2)[other]

        def true_rate(images):
            return float((predict(module, images) == y).float().mean())

        def any_rate(images):
            return float((predict(module, images) >= 0).float().mean())

        cells = [true_rate(x)] + [true_rate(blur(x, s)) for s in (1.0, 2.0, 3.0)]
        cells += [any_rate(noise), any_rate(blur(noise, 2.0)), any_rate(ghosts)]
        name = f"{Path(path).name}{' (reject)' if meta.get('reject') else ''}"
        print(f"| {name} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
