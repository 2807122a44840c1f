"""What can the recipe's encoder reach on its own? An upper reference for the GAN's encoder accuracy.

    python benchmarks/encoder_ceiling.py recipes/quickstart.yaml --seeds 0,1,2 --steps 1200 \
        --labels 500 --labeled-per-step 13 [--augment-labeled] [--consistency 10 --threshold 0.9] [--set KEY=VALUE]

Trains only E (the recipe's network family, width and options; its first supervised categorical
variable's head) with the recipe's optimiser settings (``optim.lr_ge``, ``optim.betas``,
``optim.batch_size``) on the recipe's training split, and reports its accuracy on the held-out
split every ``--every`` steps (BatchNorm statistics of the 1,000-odd held-out images, as the
trainer's re-estimated statistics). Each step draws ``--labeled-per-step`` labeled images (with
replacement) for the supervised cross-entropy and fills the batch with unlabeled images;
``--consistency W`` adds the ``losses.consistency`` term itself (FixMatch with the recipe's
options for it, e.g. ``--set losses.consistency.options.strong=[affine,cutout]``, and
``--threshold``) on the whole batch with weight W, and
``--vat W`` adds ``losses.vat`` (virtual adversarial training, its options from the recipe's
``losses.vat`` if it has one) the same way, and
``--augment-labeled`` shows the labeled images translated and flipped (FixMatch's weak view).
``--labels all`` gives the fully supervised reference.
``--generator CKPT --generated-per-step N`` adds, with weight ``--generated-weight``, the
cross-entropy of E's head on N images a finished checkpoint's G draws each step (its saved,
averaged weights, BatchNorm in eval mode) against the class each was drawn with: what a trained
G's images can teach E beyond the labels (the GAN's information loss, with G fixed).
``--unlabeled-set KEY=VALUE`` (repeatable) draws the unlabeled rows, and the images a term's
``unlabeled_ratio`` adds, from the training split of the recipe with these overrides instead
(e.g. ``data.dataset=fashion-mnist`` with its ``data.options.root``: all 60,000 Fashion-MNIST
training images beside the slice's 500 labels): what more unlabeled images give the same labels.

Otherwise nothing of the GAN runs here (no G, no D, no information loss), so the figures separate what E
can learn from the labels and the unlabeled images from what the GAN adds or takes away.
Prints one line per seed and the mean +- std at each evaluated step.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from toolkit.augment import augment
from toolkit.data import load_dataset, select_labels
from toolkit.errors import ToolkitError
from toolkit.latent import build_spec
from toolkit.losses import StepOutputs, build_losses
from toolkit.model import load_model
from toolkit.networks import build_networks
from toolkit.recipe import LossConfig, load_recipe

WEAK_LABELED = ["translation", "flip"]  # FixMatch's weak view of labeled images


def consistency_loss(term, encoder, images: torch.Tensor, raw: torch.Tensor, step: int, pool: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """A term with passes of its own (``losses.consistency``, ``losses.vat``) on ``images`` with E
    alone: its passes, then its loss (the term reads only its extra passes; the GAN's outputs are
    left empty). ``raw``: E(images) without gradients, the GAN step's own E(x) that a term may
    read. A term with an ``unlabeled_ratio`` mu > 0 also gets ``mu * len(images)`` images drawn
    uniformly from ``pool`` (the training images), as the trainer draws them."""
    batch = {"x_real": images, "raw_real": raw}
    if term.unlabeled_ratio:
        more = torch.randint(len(pool), (term.unlabeled_ratio * len(images),), generator=generator)
        batch["x_unlabeled"] = pool[more]
    views = term.extra_passes(SimpleNamespace(encoder=encoder), batch, step)
    empty = {f.name: None for f in dataclasses.fields(StepOutputs) if f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING}
    return term(StepOutputs(**empty, extra={term.name: views}))["ge"]


def train_encoder(recipe, seed: int, steps: int, labels, labeled_per_step: int, augment_labeled: bool,
                  consistency: float, threshold: float, every: int, vat: float = 0.0,
                  generator_model=None, generated_per_step: int = 0, generated_weight: float = 1.0,
                  unlabeled: torch.Tensor | None = None) -> dict[int, float]:
    """E alone for ``steps`` steps; its held-out accuracy (a fraction) at every ``every`` steps and
    the last. ``generator_model``: a :class:`toolkit.model.Model` whose G draws ``generated_per_step``
    labeled images per step (its spec must be the recipe's). ``unlabeled``: images ``(N, C, H, W)``
    in [0, 1] to draw the unlabeled rows from (default: the recipe's training split)."""
    torch.manual_seed(seed)
    train, test = load_dataset(recipe, "train"), load_dataset(recipe, "test")
    spec = build_spec(recipe, train)
    variable = spec.supervised[0]
    head = spec.slices[variable.name]
    encoder = build_networks(recipe.model.network, spec, train.shape, recipe.model.options).encoder
    count = "all" if labels == "all" else int(labels)
    y = select_labels(train, {variable.label: variable.size}, count, seed)[variable.label]
    labeled = (y >= 0).nonzero().flatten()
    images = train.images.float() / 255
    pool = images if unlabeled is None else unlabeled
    test_x, test_y = test.images.float() / 255, test.attribute(variable.label)
    opt = torch.optim.Adam(encoder.parameters(), recipe.optim.lr_ge, betas=tuple(recipe.optim.betas))
    g = torch.Generator().manual_seed(seed)
    unlabeled_per_step = max(recipe.optim.batch_size - labeled_per_step, 0)
    recipe_term = recipe.losses.get("consistency")
    options = {**(recipe_term.options if recipe_term else {}), "threshold": threshold}
    term = build_losses({"consistency": LossConfig(options=options)}, spec)["consistency"]
    recipe_vat = recipe.losses.get("vat")
    vat_term = build_losses({"vat": LossConfig(options=recipe_vat.options if recipe_vat else {})}, spec)["vat"]
    history = {}
    for step in range(1, steps + 1):
        li = labeled[torch.randint(len(labeled), (labeled_per_step,), generator=g)]
        ui = torch.randint(len(pool), (unlabeled_per_step,), generator=g)
        x_lab = images[li]
        if augment_labeled:
            x_lab = augment(x_lab, WEAK_LABELED)
        loss = F.cross_entropy(encoder(x_lab)[:, head], y[li])
        if generator_model is not None and generated_per_step > 0:
            with torch.no_grad():
                z = generator_model.spec.sample(generated_per_step, generator=g)
                x_gen = generator_model.networks.generator(z)
            loss = loss + generated_weight * F.cross_entropy(encoder(x_gen)[:, head], z[:, head].argmax(1))
        if consistency > 0 or vat > 0:
            x = torch.cat([images[li], pool[ui]])
            with torch.no_grad():
                raw = encoder(x)  # once for both terms, as the trainer's step computes it once
        if consistency > 0:
            loss = loss + consistency * consistency_loss(term, encoder, x, raw, step, pool, g)
        if vat > 0:
            loss = loss + vat * consistency_loss(vat_term, encoder, x, raw, step, pool, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            with torch.no_grad():  # batch statistics of the held-out images
                pred = encoder(test_x)[:, head].argmax(1)
            known = test_y >= 0
            history[step] = float((pred[known] == test_y[known]).float().mean())
    return history


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--labels", default=None, help="labeled images (default: the recipe's data.labels; 'all')")
    p.add_argument("--labeled-per-step", type=int, default=13, help="labeled images in each step's batch")
    p.add_argument("--augment-labeled", action="store_true")
    p.add_argument("--consistency", type=float, default=0.0, help="weight of FixMatch (0: off)")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--vat", type=float, default=0.0, help="weight of virtual adversarial training (0: off; "
                   "its options from the recipe's losses.vat, e.g. --set losses.vat.options.epsilon=3)")
    p.add_argument("--generator", metavar="CKPT", help="a checkpoint of this recipe whose G draws labeled images for E")
    p.add_argument("--generated-per-step", type=int, default=64, help="G's images per step (with --generator)")
    p.add_argument("--generated-weight", type=float, default=1.0, help="weight of E's cross-entropy on them")
    p.add_argument("--unlabeled-set", action="append", default=[], metavar="KEY=VALUE",
                   help="draw the unlabeled rows from the training split of the recipe with this override too "
                   "(e.g. data.dataset=fashion-mnist)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field (e.g. model.options.width=1)")
    a = p.parse_args(argv)
    recipe = load_recipe(a.recipe, a.set)
    labels = a.labels if a.labels is not None else recipe.data.labels
    generator_model = None
    if a.generator:
        try:
            generator_model = load_model(a.generator)
        except ToolkitError as e:
            p.error(f"--generator: {e}")
        generator_model.networks.eval()
        if generator_model.spec.slices != build_spec(recipe, load_dataset(recipe, "train")).slices:
            p.error(f"--generator: {a.generator} has another latent code than {a.recipe}")
    unlabeled = None
    if a.unlabeled_set:
        try:
            more = load_dataset(load_recipe(a.recipe, a.set + a.unlabeled_set), "train")
        except ToolkitError as e:
            p.error(f"--unlabeled-set: {e}")
        shape = load_dataset(recipe, "train").shape
        if more.shape != shape:
            p.error(f"--unlabeled-set: its images are {'x'.join(map(str, more.shape))}, the recipe's "
                    f"{'x'.join(map(str, shape))}")
        unlabeled = more.images.float() / 255
    runs = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        start = time.perf_counter()
        runs[seed] = train_encoder(recipe, seed, a.steps, labels, a.labeled_per_step, a.augment_labeled,
                                   a.consistency, a.threshold, a.every, a.vat, generator_model, a.generated_per_step,
                                   a.generated_weight, unlabeled)
        curve = " ".join(f"{k}:{100 * v:.1f}" for k, v in runs[seed].items())
        print(f"seed {seed}: {curve}  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"labels {labels}, {a.labeled_per_step} labeled per step, augment labeled {a.augment_labeled}, "
          f"consistency {a.consistency} (threshold {a.threshold}), vat {a.vat}"
          + (f", {a.generated_per_step} of G's images per step (weight {a.generated_weight})" if generator_model else "")
          + (f", unlabeled rows from {len(unlabeled)} images ({' '.join(a.unlabeled_set)})" if unlabeled is not None else "")
          + f"; held-out accuracy, mean +- std over {len(runs)} seeds:")
    for step in next(iter(runs.values())):
        values = [100 * r[step] for r in runs.values()]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  step {step}: {statistics.mean(values):.1f} +- {std:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
