"""Loss terms: small objects with a weight and a schedule, fed the step's named outputs.

A term returns ``{"ge": tensor}`` (minimised by G and E), ``{"d": tensor}`` (minimised by
D), or both. The trainer multiplies the G/E part by ``weight * ramp(step)`` and the D part by
``weight`` (the discriminator is not ramped, as in the authors' code).

A term that needs forward passes of its own (a gradient penalty's pass of D on real pairs, an
encoder pass on augmented images) implements :meth:`LossTerm.extra_passes`: the trainer runs it
inside the step's forward (the unit that DistributedDataParallel wraps, under the step's
autocast) and hands its tensors back in ``StepOutputs.extra[term.name]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    step: int = 0  # the 1-based training step
    extra: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # by term name: its extra_passes


class LossTerm:
    """Base class of a loss term; subclasses implement :meth:`__call__`.

    ``needs`` names the optional forward passes the term reads (``"swap"``: translations of
    real images to the prior's codes, :attr:`StepOutputs.raw_swap`; ``"fixed_encoder"``: the
    encodings of generated images with E's weights held fixed, :attr:`StepOutputs.raw_fake_fixed`).
    """

    needs: frozenset = frozenset()
    name: str = ""  # the recipe's name for the term (set by build_losses)

    def __init__(self, spec, options=None):
        self.spec = spec
        self.options = options

    def __call__(self, out: StepOutputs) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def extra_passes(self, nets, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """Forward passes of the term's own, run inside the step's forward; ``{}`` skips them.

        Args:
            nets: has ``generator``, ``encoder`` and ``discriminator`` (the step's modules, in
                training mode) and ``spec``.
            batch: the step's ``x_real`` ``(B, C, H, W)`` in [0, 1], ``z_fake`` ``(B, dim)``,
                ``z_real`` (E's code of ``x_real``), ``x_fake`` (G's images of ``z_fake``) and
                ``raw_real``; they carry gradients (detach what the pass must not train).
            step: the 1-based training step (a lazy penalty runs every k steps).

        Returns:
            Named tensors, given back to :meth:`__call__` as ``out.extra[self.name]``. A
            gradient with respect to an input (R1, R2, WGAN-GP) is taken here, with
            ``torch.autograd.grad(..., create_graph=True)`` on inputs the pass made.
        """
        return {}


def has_extra_passes(term) -> bool:
    """Whether ``term`` (a LossTerm or any callable a plugin returned) defines passes of its own."""
    method = getattr(type(term), "extra_passes", None)
    return callable(method) and method is not LossTerm.extra_passes


def ramp_factor(step: int, ramp: int) -> float:
    """Linear ramp from 0 to 1 over ``ramp`` steps (1-based step: 1/ramp at step 1)."""
    return 1.0 if ramp <= 0 else min(1.0, step / ramp)


def build_losses(recipe_losses: dict, spec) -> dict[str, LossTerm]:
    """Build every loss term named in the recipe."""
    terms = {}
    for name, cfg in recipe_losses.items():
        entry = registry("loss").get(name)
        terms[name] = entry.build(spec, options=cfg.options, where=f"losses.{name}.options")
        try:
            terms[name].name = name  # how the term finds its extra passes in StepOutputs.extra
        except AttributeError:  # a callable that takes no attributes cannot have extra passes either
            pass
    return terms
