"""How well a model does what it promises, measured as in the paper.

- **generator error**: the share of generated images that a separately trained classifier
  does not recognise as the class that was asked for (N per class; overall and per class);
- **translation accuracy**: test images translated into each class of that variable, and the
  share the same classifier judges to be of the requested class (Fig. 4, counted; first N test images);
- **encoder accuracy**: the encoder's class on held-out images, per supervised variable;
- **reconstruction error**: mean squared error per pixel of G(E(x)) on held-out images;
- **within-class spread**: how much generated images of one class differ from each other (the
  per-pixel standard deviation over the class's images, averaged over pixels and classes),
  beside the same for the held-out images of each class: a generator that draws one image per
  class (mode collapse) has a spread far below the real one.

Every report carries its protocol (classifier file hash, the hash of the data that tested the
classifier, N, seed, step) so that numbers can be compared honestly. Generated images are
classified as tensors (the authors' code saved them as min-max-stretched JPEGs first).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .classifier import balanced_accuracy, class_accuracy, classifier_hash, load_classifier, predict
from .data import load_dataset
from .errors import ToolkitError
from .files import atomic_write


def generator_error(model, classifier, variable: str, per_class: int, seed: int, batch: int = 500) -> dict:
    """Per-class and overall error of generated images judged by ``classifier``; ``refused`` is
    the share of all generated images the judge refused as no class (a judge trained with
    ``reject``), a part of the error: an error that is mostly refusals means unclear images, not
    the wrong class."""
    var = model.spec[variable]
    g = torch.Generator().manual_seed(seed)
    errors, spreads, refused = {}, {}, 0
    for k, name in enumerate(var.classes):
        wrong, moments = 0, SpreadMoments()
        for start in range(0, per_class, batch):
            n = min(batch, per_class - start)
            z = model.spec.assign(model.spec.sample(n, generator=g), {variable: k})
            images = model.decode(z)
            moments.add(images)
            predicted = predict(classifier, images.to(next(classifier.parameters()).device)).cpu()
            wrong += int((predicted != k).sum())
            refused += int((predicted == -1).sum())
        errors[name] = wrong / per_class
        spreads[name] = moments.spread()
    return {"overall": sum(errors.values()) / len(errors), "per_class": errors,
            "refused": refused / (per_class * len(var.classes)),
            "spread": sum(spreads.values()) / len(spreads), "spread_per_class": spreads}


class SpreadMoments:
    """Running per-pixel sums of a set of images, for their within-set spread."""

    def __init__(self):
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, images: torch.Tensor) -> None:
        x = images.detach().double().cpu()
        self.n += len(x)
        self.total = self.total + x.sum(0)
        self.squares = self.squares + x.square().sum(0)

    def spread(self) -> float:
        """Per-pixel standard deviation over the images (population), averaged over pixels; 0
        for fewer than two images. Images in [0, 1], so the spread is in [0, 0.5]."""
        if self.n < 2:
            return 0.0
        mean = self.total / self.n
        return float((self.squares / self.n - mean.square()).clamp(min=0).sqrt().mean())


def class_spread(images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, float | None]:
    """Within-class spread (:meth:`SpreadMoments.spread`) of uint8 ``images`` ``(N, C, H, W)`` (an
    :class:`~toolkit.data.ImageSet`'s) per class of ``labels`` ``(N,)`` (-1: no label), on the
    [0, 1] scale; None for a class with fewer than two images."""
    spreads = {}
    for k, name in enumerate(classes):
        members = images[labels == k]
        if len(members) < 2:
            spreads[name] = None
            continue
        moments = SpreadMoments()
        for start in range(0, len(members), 1000):
            moments.add(members[start : start + 1000].float() / 255.0)
        spreads[name] = moments.spread()
    return spreads


@torch.no_grad()
def translation_accuracy(model, classifier, variable: str, test, n: int, batch: int = 500,
                         strength: float = 1.0, keep_details: bool = False) -> dict:
    """Share of the first ``n`` test images translated into each class that ``classifier``
    judges to be of that class (the paper's Fig. 4, counted); per class and overall. Also the
    mean absolute change of the pixels (how far translations move from their inputs) and the
    share of translations the judge refused as no class (``refused``). ``strength`` and
    ``keep_details`` as in :meth:`toolkit.model.Model.translate`."""
    var = model.spec[variable]
    device = next(classifier.parameters()).device
    hits = dict.fromkeys(var.classes, 0)
    change, refused = 0.0, 0
    n = min(n, len(test.images))
    for start in range(0, n, batch):
        x = test.images[start : min(start + batch, n)].float() / 255.0
        translated = model.translations(x, [{variable: name} for name in var.classes], strength, keep_details)
        for k, (name, images) in enumerate(zip(var.classes, translated)):
            predicted = predict(classifier, images.to(device)).cpu()
            hits[name] += int((predicted == k).sum())
            refused += int((predicted == -1).sum())
            change += float((images - x).abs().mean(dim=(1, 2, 3)).sum())
    per_class = {name: h / n for name, h in hits.items()}
    return {"overall": sum(per_class.values()) / len(per_class), "per_class": per_class, "images": n,
            "refused": refused / (n * len(var.classes)), "mean_abs_change": change / (n * len(var.classes)),
            "strength": strength, "keep_details": keep_details}


@torch.no_grad()
def encoder_metrics(model, test) -> dict:
    """Encoder accuracy per supervised variable and reconstruction MSE on a test ImageSet.

    ``encoder_balanced_accuracy`` is the mean over classes of the share of each class's test
    images the encoder reads as that class: for an imbalanced attribute (4% of CelebA faces are
    pale) it tells an encoder that reads the rare class from one that always answers "no"."""
    predicted = {v.name: [] for v in model.spec.supervised}
    truth = {v.name: [] for v in model.spec.supervised}
    sq_error, pixels = 0.0, 0
    for start in range(0, len(test), 500):
        x = test.images[start : start + 500].float() / 255.0
        raw = model.networks.encoder(x.to(model.device))
        for v in model.spec.supervised:
            labels = test.labels.get(v.label)
            if labels is None:
                continue
            y = labels[start : start + 500]
            known = y >= 0
            predicted[v.name].append(raw[:, model.spec.slices[v.name]].argmax(1).cpu()[known])
            truth[v.name].append(y[known])
        rec = model.networks.generator(model.spec.code(raw)).cpu()
        sq_error += float((rec - x).square().sum())
        pixels += x.numel()
    accuracy, balanced = {}, {}
    for v in model.spec.supervised:
        if not sum(len(t) for t in truth[v.name]):
            continue
        pred, y = torch.cat(predicted[v.name]), torch.cat(truth[v.name])
        accuracy[v.name] = float((pred == y).float().mean())
        balanced[v.name] = balanced_accuracy(class_accuracy(pred, y, list(v.classes)))
    return {"encoder_accuracy": accuracy, "encoder_balanced_accuracy": balanced,
            "reconstruction_mse": sq_error / max(pixels, 1)}


WEAK_JUDGE = 0.5  # a judge that recognises less than this share of a class's real images


def judge_warnings(meta: dict, path: str | Path) -> list[str]:
    """One line per class the judge itself recognises in less than :data:`WEAK_JUDGE` of its
    own test images (from the file's ``class_accuracy``): generated images of that class cannot
    score well, whatever the model does. Judges from before per-class accuracy: no lines."""
    lines = []
    for name, recall in (meta.get("class_accuracy") or {}).items():
        if recall is not None and recall < WEAK_JUDGE:
            lines.append(f"warning: the judge {path} recognises only {recall:.0%} of real '{name}' images of "
                         f"'{meta.get('attribute')}': its figures for '{name}' mean little (retrain it with "
                         "toolkit classifier train; class-balanced sampling is the default)")
    return lines


def class_variable_for(model, classifier_meta: dict) -> str:
    """The latent variable supervised by the attribute the classifier was trained on."""
    attribute = classifier_meta.get("attribute")
    for v in model.spec.categorical:
        if v.label == attribute:
            if len(v.classes) != len(classifier_meta.get("classes", [])):
                raise ToolkitError(f"classifier has {len(classifier_meta['classes'])} classes, variable '{v.name}' has {len(v.classes)}")
            return v.name
    labelled = ", ".join(f"{v.name} ({v.label})" for v in model.spec.supervised) or "none"
    raise ToolkitError(f"the classifier judges attribute '{attribute}', but no latent variable is supervised by it "
                       f"(supervised: {labelled})")


def evaluate(model, classifier_path: str | Path | None, per_class: int = 500, seed: int = 0, test=None,
             strength: float = 1.0, keep_details: bool = False) -> dict:
    """The full report for one checkpoint (see the module docstring)."""
    report: dict = {"checkpoint": str(model.path) if model.path else None, "step": model.step,
                    "protocol": {"seed": seed}}  # + samples_per_class where a judge reads images
    if classifier_path is not None:  # a missing or unreadable judge is refused before anything is measured
        require_classifier(classifier_path, model.recipe)
        classifier, meta = load_classifier(classifier_path, device=model.device)
        variable = class_variable_for(model, meta)
    if test is None:
        test = model.load_data("test") if hasattr(model, "load_data") else load_dataset(model.recipe, "test")
    report.update(encoder_metrics(model, test))
    report["protocol"]["test_images"] = len(test)
    if classifier_path is not None:
        report["generator_error"] = generator_error(model, classifier, variable, per_class, seed)
        report["generator_error"]["variable"] = variable
        label = model.spec[variable].label
        if label is not None and label in getattr(test, "labels", {}):
            real = class_spread(test.images, test.labels[label], model.spec[variable].classes)
            known = [v for v in real.values() if v is not None]
            report["generator_error"]["real_spread"] = sum(known) / len(known) if known else None
            report["generator_error"]["real_spread_per_class"] = real
        report["translation_accuracy"] = translation_accuracy(model, classifier, variable, test, per_class,
                                                              strength=strength, keep_details=keep_details)
        report["translation_accuracy"]["variable"] = variable
        report["protocol"].update({
            "samples_per_class": per_class,
            "translated_images": min(per_class, len(test)),
            "classifier": str(classifier_path),
            "classifier_sha256": classifier_hash(classifier_path),
            "classifier_test_accuracy": meta.get("test_accuracy"),
            "classifier_balanced_accuracy": meta.get("balanced_accuracy"),
            "classifier_data_hash": meta.get("data_hash"),
        })
    return report


def classifier_command(recipe, path: str | Path) -> str:
    """The command that trains a judge for ``recipe``'s first labeled variable into ``path``."""
    label = next((v.label for v in recipe.latent.variables.values() if v.label), "ATTRIBUTE")
    return f"toolkit classifier train {recipe.data.dataset} --attribute {label} -o {path}"


def require_classifier(path: str | Path, recipe) -> None:
    """A missing classifier is a user error that says how to make one."""
    if not Path(path).is_file():
        raise ToolkitError(f"classifier not found: {path}; train it with: {classifier_command(recipe, path)}")


def write_report(report: dict, path: Path) -> Path:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    return path
