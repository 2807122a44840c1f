"""Loss terms: small objects with a weight and a schedule, fed the step's named outputs.

A term returns ``{"ge": tensor}`` (minimised by G and E), ``{"d": tensor}`` (minimised by
D), or both. The trainer multiplies the G/E part by ``weight * ramp(step)`` and the D part by
``weight`` (the discriminator is not ramped, as in the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .plugins import registry


@dataclass
class StepOutputs:
    """Everything one forward pass produces, by name."""

    x_real: torch.Tensor  # real images
    labels: dict[str, torch.Tensor]  # per supervised variable: class index or -1
    raw_real: torch.Tensor  # E(x_real), raw (logits for categorical parts)
    z_real: torch.Tensor  # the code of x_real (softmax over categorical parts)
    x_rec: torch.Tensor  # G(z_real)
    z_fake: torch.Tensor  # Z drawn from the prior
    x_fake: torch.Tensor  # G(z_fake)
    raw_fake: torch.Tensor  # E(x_fake), raw
    d_real: torch.Tensor  # D(x_real, z_real), logits
    d_fake: torch.Tensor  # D(x_fake, z_fake), logits
    raw_swap: torch.Tensor | None = None  # E(G(u of x_real, c of z_fake)): only when a term needs it
    # the same two encodings with E's weights held fixed (gradients reach G only): "fixed_encoder"
    raw_fake_fixed: torch.Tensor | None = None
    raw_swap_fixed: torch.Tensor | None = None  # also needs "swap"


class LossTerm:
    """Base class of a loss term; subclasses implement :meth:`__call__`.

    ``needs`` names the optional forward passes the term reads (``"swap"``: translations of
    real images to the prior's codes, :attr:`StepOutputs.raw_swap`; ``"fixed_encoder"``: the
    encodings of generated images with E's weights held fixed, :attr:`StepOutputs.raw_fake_fixed`).
    """

    needs: frozenset = frozenset()

    def __init__(self, spec, options=None):
        self.spec = spec
        self.options = options

    def __call__(self, out: StepOutputs) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def ramp_factor(step: int, ramp: int) -> float:
    """Linear ramp from 0 to 1 over ``ramp`` steps (1-based step: 1/ramp at step 1)."""
    return 1.0 if ramp <= 0 else min(1.0, step / ramp)


def build_losses(recipe_losses: dict, spec) -> dict[str, LossTerm]:
    """Build every loss term named in the recipe."""
    terms = {}
    for name, cfg in recipe_losses.items():
        entry = registry("loss").get(name)
        terms[name] = entry.build(spec, options=cfg.options, where=f"losses.{name}.options")
    return terms
