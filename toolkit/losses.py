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

from .errors import PluginError, ToolkitError, exception_line
from .plugins import registry

PARTS = {"ge": "G and E", "d": "D"}


@dataclass
class StepOutputs:
    """Everything one forward pass produces, by name."""

    x_real: torch.Tensor  # real images
    labels: dict[str, torch.Tensor]  # per supervised variable: class index or -1
    raw_real: torch.Tensor  # E(x_real), raw (logits for categorical parts)
    z_real: torch.Tensor  # the code of x_real (softmax over categorical parts)
    x_rec: torch.Tensor  # G(z_real) (with "labeled_reconstruction": labeled rows' variables from their labels)
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
    encodings of generated images with E's weights held fixed, :attr:`StepOutputs.raw_fake_fixed`;
    ``"averaged_encoder"``: the term's own passes call ``nets.averaged_encoder(x)``, E with
    ``train.ema``'s averaged weights, so a recipe without ``train.ema`` is refused before training;
    ``"labeled_reconstruction"``: :attr:`StepOutputs.x_rec` is G of E's code with the labeled rows'
    supervised variables set to their labels, instead of G(E(x))).

    ``unlabeled_ratio`` (FixMatch's mu): how many more real training images per batch row the
    term's own passes read; the trainer draws ``unlabeled_ratio * batch_size`` of them uniformly
    from the whole training set each step (labels unused) and hands them to
    :meth:`extra_passes` as ``batch["x_unlabeled"]``. 0 (default): none are drawn.
    """

    needs: frozenset = frozenset()
    unlabeled_ratio: int = 0
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
                ``z_real`` (E's code of ``x_real``), ``z_real_d`` (the code D sees beside
                ``x_real``: ``z_real``, or one-hots with ``train.d_code: hard`` or ``labels``), ``x_fake``
                (G's images of ``z_fake``) and ``raw_real``; they carry gradients (detach what the pass must not train); and
                ``x_unlabeled`` ``(mu * B, C, H, W)`` in [0, 1] when the term's
                ``unlabeled_ratio`` mu is above 0.
            step: the 1-based training step (a lazy penalty runs every k steps).

        Returns:
            Named tensors, given back to :meth:`__call__` as ``out.extra[self.name]``. A
            gradient with respect to an input (R1, R2, WGAN-GP) is taken here, with
            ``torch.autograd.grad(..., create_graph=True)`` on inputs the pass made.
        """
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Running statistics the term keeps from step to step (for example SoftMatch's mean
        confidence), by name; the trainer saves them in the resume file as
        ``losses.state.<term>.<name>`` and hands them back to :meth:`load_state_dict` on
        ``--resume``. ``{}`` (the default): a term without state."""
        return {}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (the resume file's tensors, on the CPU)."""


def has_extra_passes(term) -> bool:
    """Whether ``term`` (a LossTerm or any callable a plugin returned) defines passes of its own."""
    method = getattr(type(term), "extra_passes", None)
    return callable(method) and method is not LossTerm.extra_passes


def unlabeled_ratio(terms) -> int:
    """The most :attr:`LossTerm.unlabeled_ratio` among ``terms`` (a dict by name): how many more
    real images per batch row the step draws for them (0: none)."""
    return max((getattr(t, "unlabeled_ratio", 0) for t in (terms or {}).values()), default=0)


def ramp_factor(step: int, ramp: int) -> float:
    """Linear ramp from 0 to 1 over ``ramp`` steps (1-based step: 1/ramp at step 1)."""
    return 1.0 if ramp <= 0 else min(1.0, step / ramp)


def build_losses(recipe_losses: dict, spec) -> dict[str, LossTerm]:
    """Build every loss term named in the recipe."""
    terms = {}
    for name, cfg in recipe_losses.items():
        entry = registry("loss").get(name)
        term = entry.build(spec, options=cfg.options, where=f"losses.{name}.options")
        if not hasattr(term, "needs"):  # a plain function is a term that needs no optional pass
            term = _Plain(term)
        try:
            term.name = name  # how the term finds its extra passes in StepOutputs.extra
        except AttributeError:  # a callable that takes no attributes cannot have extra passes either
            pass
        terms[name] = term
    return terms


class _Plain(LossTerm):
    """A plain callable as a :class:`LossTerm`."""

    def __init__(self, function):
        self.function = function

    def __call__(self, out):
        return self.function(out)


def loss_origin(name: str) -> str:
    """``loss 'adv' (plugin 'paper', toolkit-gan 0.1.0)``, or ``loss 'adv'`` when it is not registered."""
    try:
        return registry("loss").get(name).origin()
    except ToolkitError:
        return f"loss '{name}'"


def loss_problem(parts, finite: bool = False, skipped: bool = False) -> str | None:
    """What is wrong with what a loss term returned, or None: the one set of rules that
    :func:`run_term` (every training step) and :func:`toolkit.testing.smoke_test_loss` apply.

    A non-empty dict whose keys are among ``"ge"`` and ``"d"``; each value a floating-point
    scalar tensor (shape ``()``) that depends on the parameters it trains (``requires_grad``).
    These read only tensor metadata: no host-device synchronisation. ``finite=True`` also
    checks the values are finite (a synchronisation: the smoke tests; the trainer checks at
    its log steps instead). ``skipped=True``: the term's own passes (:meth:`LossTerm.extra_passes`)
    returned nothing this step (lazy regularisation), so a part may be a constant such as
    ``out.d_real.new_zeros(())``.
    """
    if not isinstance(parts, dict) or not parts:
        return f"must return a dict like {{'ge': tensor}} or {{'d': tensor}}, got {_short(parts)}"
    unknown = [k for k in parts if k not in PARTS]
    if unknown:
        listed = ", ".join(repr(k) for k in unknown)
        return f"returned unknown part(s) {listed} (allowed: 'ge' for G and E, 'd' for D)"
    for key, value in parts.items():
        if not torch.is_tensor(value):
            return f"part '{key}' must be a tensor, got {type(value).__name__}"
        if value.dim() != 0:
            return f"part '{key}' must be a scalar (shape ()), got shape {tuple(value.shape)} (reduce it, e.g. .mean())"
        if not value.is_floating_point():
            return f"part '{key}' must be a floating-point tensor, got {value.dtype}"
        if not value.requires_grad and not skipped:
            return f"part '{key}' does not depend on {PARTS[key]}: it cannot train them (detached, or nothing to learn from?)"
        if finite and not bool(torch.isfinite(value)):
            return f"part '{key}' is not finite ({float(value.detach())})"
    return None


def run_term(name: str, term, out: StepOutputs) -> dict[str, torch.Tensor]:
    """Call loss term ``name`` on the step's outputs and check what it returns (:func:`loss_problem`).

    Anything that goes wrong inside the term is one line naming the term, its plugin and
    distribution (a :class:`PluginError`; the original traceback is chained for ``--debug``).
    """
    try:
        parts = term(out)
    except ToolkitError as exc:
        raise PluginError(f"{loss_origin(name)}: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"{loss_origin(name)} raised {exception_line(exc)}") from exc
    skipped = has_extra_passes(term) and not out.extra.get(name)  # a lazy term's off step: a constant is fine
    problem = loss_problem(parts, skipped=skipped)
    if problem:
        raise PluginError(f"{loss_origin(name)} {problem}")
    return parts


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_bad_loss(name: str, value: float, step: int, terms) -> str:
    """``loss 'adv' (plugin 'paper', toolkit-gan 0.1.0), part 'd', became nan at step 1``."""
    term, part = (name[:-2], "d") if name.endswith("_d") and name[:-2] in terms else (name, "ge")
    return f"{loss_origin(term)}, part '{part}', became {value} at step {step}"
