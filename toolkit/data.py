"""Datasets as tensors with partial labels, the labeled subset, and the batch sampler.

A dataset plugin returns an :class:`ImageSet`: uint8 images ``(N, C, H, W)`` and, per
attribute, an int64 label tensor in which ``-1`` means "no label". The whole set lives in
memory (on the training device), so a batch is one indexing operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from pydantic import ValidationError

from .errors import ToolkitError, did_you_mean
from .plugins import registry
from .recipe import AttributeConfig, format_validation_error
from .registry import check_results

MISSING = -1


@dataclass
class ImageSet:
    """Images plus partial labels: ``labels[attr][i] == -1`` when image i has no label."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        # int32, uint8, ... (from numpy or a CSV reader): the class index as int64, which the losses take
        self.labels = {k: v.long() if _other_integers(v) else v for k, v in self.labels.items()}
        for name, lab in self.labels.items():
            if lab.shape != (len(self.images),):
                raise ValueError(f"labels['{name}'] has shape {tuple(lab.shape)}, expected ({len(self.images)},)")
            if name not in self.classes:
                raise ValueError(f"labels['{name}'] has no class names in ImageSet.classes")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def attribute(self, name: str) -> torch.Tensor:
        if name not in self.labels:
            raise ToolkitError(f"the dataset has no attribute '{name}': {did_you_mean(name, self.labels)}")
        return self.labels[name]

    def subset(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(self.images[index], {k: v[index] for k, v in self.labels.items()}, dict(self.classes))


def _other_integers(labels) -> bool:
    return (isinstance(labels, torch.Tensor) and labels.dtype != torch.int64 and not labels.dtype.is_floating_point
            and not labels.is_complex() and labels.dtype != torch.bool)


def check_imageset(data, split: str = "?") -> str | None:
    """What is wrong with a dataset plugin's result (completing "dataset 'x' (plugin ...) ..."), or None.

    An :class:`ImageSet` with at least one image, laid out (N, C, H, W) (a shape with 1 or 3 last
    and neither 1 nor 3 second is refused as channels-last); every label an integer from -1
    to the attribute's class count - 1 (integer labels of any width are stored as int64); at least
    one class name per attribute.
    """
    if not isinstance(data, ImageSet):
        return f"returned {type(data).__name__} for split '{split}', expected a toolkit.data.ImageSet"
    if len(data) == 0:
        return f"has no images in split '{split}'"
    n, c, h, w = data.images.shape
    if c not in (1, 3) and w in (1, 3):
        return (f"returned images of shape {(n, c, h, w)} in split '{split}': channels last (N, H, W, C); the toolkit "
                f"takes (N, C, H, W), e.g. images.permute(0, 3, 1, 2).contiguous()")
    for name in list(data.labels):
        if _other_integers(data.labels[name]):  # set after ImageSet was made: stored as int64 here too
            data.labels[name] = data.labels[name].long()
        lab = data.labels[name]
        if lab.dtype.is_floating_point or lab.dtype == torch.bool or lab.is_complex():
            return f"labels['{name}'] are {lab.dtype}, expected integers (class index, -1 = no label)"
        k = len(data.classes.get(name, []))
        if not k:
            return f"attribute '{name}' has no class names (ImageSet.classes['{name}'] is empty)"
        bad = (lab < MISSING) | (lab >= k)
        if bool(bad.any()):
            found = sorted(set(lab[bad].tolist()))[:5]
            return (f"labels['{name}'] hold values outside -1..{k - 1} in split '{split}' ({k} classes: "
                    f"{', '.join(data.classes[name][:10])}; found {', '.join(map(str, found))})")
    return None


check_results("dataset", lambda result, kwargs: check_imageset(result, kwargs.get("split", "?")))  # in Entry.build


def derive_attributes(data: ImageSet, attributes: Mapping) -> ImageSet:
    """``data`` plus attributes derived from its 0/1 label columns (class 1 = positive).

    ``attributes`` maps a new name to an :class:`toolkit.recipe.AttributeConfig` (or its
    dict). Several columns make a categorical attribute, one class per column: a row gets
    the class of its one positive column, and -1 when none or several are positive or a
    value is missing. One column makes a 2-class attribute with the column's labels. A
    derived attribute replaces a dataset attribute of the same name.
    """
    if not attributes:
        return data
    labels, classes = dict(data.labels), dict(data.classes)
    for name, cfg in attributes.items():
        where = f"data.attributes.{name}"
        if not isinstance(cfg, AttributeConfig):
            try:
                cfg = AttributeConfig.model_validate(cfg)
            except ValidationError as exc:
                raise ToolkitError(format_validation_error(exc, prefix=where)) from None
        columns = cfg.column_list()
        for column in columns:
            if column not in data.labels:
                raise ToolkitError(f"{where}: the dataset has no attribute '{column}': {did_you_mean(column, data.labels)}")
            if len(data.classes[column]) != 2:
                raise ToolkitError(
                    f"{where}: '{column}' has {len(data.classes[column])} classes "
                    f"({', '.join(data.classes[column])}); a column must be a 0/1 attribute"
                )
        if len(columns) == 1:
            derived = data.labels[columns[0]].clone()
        else:
            stack = torch.stack([data.labels[c] for c in columns], dim=1)
            positive = stack == 1
            single = (stack >= 0).all(dim=1) & (positive.sum(dim=1) == 1)
            derived = torch.where(single, positive.long().argmax(dim=1), MISSING)
        labels[name], classes[name] = derived, cfg.class_names()
    return ImageSet(data.images, labels, classes)


def load_dataset(recipe, split: str) -> ImageSet:
    """The ``split`` of a recipe's dataset (registered by a plugin), with the recipe's derived attributes added."""
    entry = registry("dataset").get(recipe.data.dataset)
    data = entry.build(options=recipe.data.options, split=split, where="data.options")
    return derive_attributes(data, recipe.data.attributes)


def balancing_weights(others: list[torch.Tensor]) -> torch.Tensor:
    """Per-row weights that favour rare classes: the product over ``others`` of
    ``1 / (K * share of the row's class)`` (1 for a balanced attribute or a missing label)."""
    n = len(others[0]) if others else 0
    weights = torch.ones(n, dtype=torch.float64)
    for labels in others:
        known = labels >= 0
        if not known.any():
            continue
        counts = torch.bincount(labels[known]).double()
        share = counts / counts.sum()
        present = int((counts > 0).sum())
        factor = 1.0 / (present * share[labels.clamp(min=0)])
        weights *= torch.where(known, factor, 1.0)
    return weights


def balanced_subset(
    labels: torch.Tensor, count: int, num_classes: int, seed: int, others: list[torch.Tensor] = (),
    names: list[str] | None = None,
) -> torch.Tensor:
    """Indices of ``count`` labeled rows, as equal per class as the data allows, chosen from ``seed``.

    Within each class, rows are drawn without replacement with :func:`balancing_weights` of
    ``others`` (label tensors of further attributes), so those come out roughly balanced too.
    """
    g = torch.Generator().manual_seed(seed)
    per_class = [count // num_classes + (1 if k < count % num_classes else 0) for k in range(num_classes)]
    chosen = []
    for k, want in enumerate(per_class):
        rows = (labels == k).nonzero().flatten()
        if len(rows) < want:
            which = f"'{names[k]}'" if names else str(k)
            raise ToolkitError(f"class {which} has only {len(rows)} labeled images, {want} were asked for")
        if others and want:
            pick = torch.multinomial(balancing_weights([o[rows] for o in others]), want, replacement=False, generator=g)
        else:
            pick = torch.randperm(len(rows), generator=g)[:want]
        chosen.append(rows[pick])
    return torch.cat(chosen).sort().values


def select_labels(data: ImageSet, attributes: dict[str, int], count: int | str, seed: int) -> dict[str, torch.Tensor]:
    """The labels training may use: a balanced subset of ``count`` rows, the rest set to -1.

    ``attributes`` maps each supervising attribute to its number of classes. The subset has
    exact per-class counts of the first attribute (rows without it are never chosen) and is
    roughly balanced on the others; the chosen rows keep all their labels (-1 where missing).
    """
    if not attributes:
        return {}
    for name in attributes:
        data.attribute(name)
    if count == "all":
        return {name: data.labels[name].clone() for name in attributes}
    first, k = next(iter(attributes.items()))
    others = [data.labels[name] for name in attributes if name != first]
    try:
        rows = balanced_subset(data.labels[first], int(count), k, seed, others, data.classes[first])
    except ToolkitError as exc:
        raise ToolkitError(f"data.labels: attribute '{first}': {exc} (lower data.labels)") from None
    keep = torch.zeros(len(data), dtype=torch.bool)
    keep[rows] = True
    return {name: torch.where(keep, data.labels[name], MISSING) for name in attributes}


class LabeledSampler:
    """Draws batch indices, favouring labeled rows early on (as in the paper).

    The probability of drawing a labeled row starts at 1 and falls linearly (by 1/ramp per
    step) until it reaches the true labeled ratio, or ``floor`` where that is higher. Each step
    draws ``Binomial(B, p)`` labeled rows and the rest unlabeled, with replacement; labeled rows come first. Everything runs
    on a private CPU generator whose state is saved for resume.
    """

    def __init__(self, labels: dict[str, torch.Tensor], size: int, batch_size: int, ramp: int, seed: int,
                 floor: float = 0.0):
        has_label = torch.zeros(size, dtype=torch.bool)
        for lab in labels.values():
            has_label |= lab >= 0
        self.labeled = has_label.nonzero().flatten()
        unlabeled = (~has_label).nonzero().flatten()
        self.unlabeled = unlabeled if len(unlabeled) else self.labeled
        if not len(self.labeled):
            self.labeled = self.unlabeled
        self.ratio = float(has_label.float().mean()) if len(self.labeled) else 0.0
        self.floor = max(self.ratio, floor) if has_label.any() else 0.0
        self.batch_size = batch_size
        self.ramp = ramp
        self.generator = torch.Generator().manual_seed(seed)

    def probability(self, step: int) -> float:
        """p(labeled) at 1-based ``step``."""
        if self.ramp <= 0:
            return self.floor
        return max(self.floor, 1.0 - step / self.ramp)

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, from_labeled)`` for one batch, both on the CPU."""
        b, g = self.batch_size, self.generator
        p = torch.tensor([self.probability(step)])
        n_lab = torch.binomial(torch.tensor([float(b)]), p, generator=g)
        lab = self.labeled[torch.randint(len(self.labeled), (b,), generator=g)]
        unl = self.unlabeled[torch.randint(len(self.unlabeled), (b,), generator=g)]
        from_labeled = torch.arange(b) < n_lab
        return torch.where(from_labeled, lab, unl), from_labeled

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
