"""The paper's figures from a checkpoint, as PNG grids.

- ``generation.png`` (Fig. 3): one row per class; columns sweep each continuous variable from
  -1 to 1 with u fixed (or random styles when there are no continuous variables);
- ``translation.png`` (Fig. 4): held-out images (first column) translated into every class;
- ``interpolation.png`` (Fig. 5): held-out image pairs and the decoded line between their codes;
- ``sweep-<var>.png`` (Figs. 8, 11): held-out images with one continuous variable set to
  -1 .. 1, everything else as encoded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .images import save_grid

SWEEP_STEPS = 5  # values of a continuous variable (Variable.sweep: the bulk of its prior)


def pick_test_images(test, variable_label: str | None, per_class: int = 1, seed: int = 0) -> torch.Tensor:
    """One (or ``per_class``) held-out image per class of the label, else random ones."""
    g = torch.Generator().manual_seed(seed)
    if variable_label and variable_label in test.labels:
        labels = test.labels[variable_label]
        rows = []
        for k in range(len(test.classes[variable_label])):
            candidates = (labels == k).nonzero().flatten()
            if len(candidates):
                rows.append(candidates[torch.randperm(len(candidates), generator=g)[:per_class]])
        index = torch.cat(rows)
    else:
        index = torch.randperm(len(test), generator=g)[:10]
    return test.images[index].float() / 255.0


def generation_figure(model, seed: int = 0) -> tuple[torch.Tensor, int]:
    spec = model.spec
    g = torch.Generator().manual_seed(seed)
    continuous = spec.continuous
    columns = SWEEP_STEPS * len(continuous) if continuous else 10
    base = spec.sample(1, generator=g).repeat(columns, 1) if continuous else spec.sample(columns, generator=g)
    if continuous:
        for i, v in enumerate(continuous):
            base[i * SWEEP_STEPS : (i + 1) * SWEEP_STEPS, spec.slices[v.name]] = torch.tensor(v.sweep(SWEEP_STEPS))[:, None]
    return model.decode(spec.class_grid(base)), columns


def translation_figure(model, images: torch.Tensor, variable: str) -> tuple[torch.Tensor, int]:
    var = model.spec[variable]
    columns = [images] + [model.translate(images, {variable: k}) for k in range(var.size)]
    return torch.stack(columns, dim=1).flatten(0, 1), var.size + 1


def interpolation_figure(model, images: torch.Tensor, steps: int = 9) -> tuple[torch.Tensor, int]:
    half = len(images) // 2
    a, b = images[:half], images[half : 2 * half].flip(0)
    line = model.interpolate(a, b, steps + 2).view(half, steps + 2, *images.shape[1:])
    rows = torch.cat([a[:, None], line[:, 1:-1], b[:, None]], dim=1)
    return rows.flatten(0, 1), steps + 2


def sweep_figure(model, images: torch.Tensor, variable: str) -> tuple[torch.Tensor, int]:
    values = model.spec[variable].sweep(SWEEP_STEPS)
    columns = [images] + [model.translate(images, {variable: v}) for v in values]
    return torch.stack(columns, dim=1).flatten(0, 1), len(values) + 1


def _save(figure: tuple[torch.Tensor, int], path: Path) -> Path:
    images, columns = figure
    return save_grid(images, path, nrow=columns)


def make_figures(model, test, out: Path, seed: int = 0) -> list[Path]:
    """Write every figure into ``out``; returns the paths."""
    out = Path(out)
    written = [_save(generation_figure(model, seed), out / "generation.png")]
    var = model.spec.class_variable()
    images = pick_test_images(test, var.label if var else None, seed=seed)
    if var:
        written.append(_save(translation_figure(model, images, var.name), out / "translation.png"))
    written.append(_save(interpolation_figure(model, images), out / "interpolation.png"))
    for v in model.spec.continuous:
        written.append(_save(sweep_figure(model, images, v.name), out / f"sweep-{v.name}.png"))
    return written
