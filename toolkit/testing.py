"""Test helpers for plugin authors; also a pytest plugin (entry point ``pytest11``).

    from toolkit.testing import plugin_registered, smoke_test_network, smoke_test_loss

- :func:`plugin_registered` / fixture ``register_plugin``: a plugin object, registered
  in-process on the global manager for the duration of a block or a test.
- :func:`synthetic_dataset`, :func:`load_synthetic`, :class:`SyntheticPlugin`: a tiny dataset
  of bars with a ``shape`` attribute, registrable as dataset ``synthetic``.
- :func:`smoke_test_network`, :func:`smoke_test_loss`, :func:`smoke_test_recipe`: check that
  a registered network family, loss term or whole recipe honours the toolkit's contracts.

Importing this module is cheap (pytest loads it in every session): torch is imported only
when a helper runs. The checks raise ``AssertionError`` with a message that says what broke.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from pathlib import Path

from .errors import ToolkitError
from .hookspecs import hookimpl

try:  # the fixtures need pytest; the helpers do not
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

DEFAULT_IMAGE_SHAPE = (1, 28, 28)


# -- registering plugins in-process --------------------------------------------------------
@contextlib.contextmanager
def plugin_registered(plugin, name: str):
    """Register ``plugin`` (a module, class instance or namespace of hooks) as ``name``; unregister after.

    Yields the global :class:`toolkit.plugins.Plugins`. Its registrations are collected at once,
    so a plugin that would be skipped (unknown hook, a hook that raises, a name another plugin
    registered) raises :class:`ToolkitError` here instead of a warning later. A plugin object
    that is already registered (e.g. installed through its entry point) is used as it is.
    """
    import warnings

    from .plugins import KINDS, PluginWarning, get_plugins

    plugins = get_plugins()
    if plugins.pm.is_registered(plugin):
        yield plugins
        return
    if plugins.pm.get_plugin(name) is not None:
        raise ToolkitError(f"plugin '{name}' cannot be registered: another plugin of that name is registered")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # turned into errors below
        ok = plugins.register(plugin, name)
        try:
            for kind in KINDS.values():
                plugins.registry(kind)
        except ToolkitError:
            plugins.unregister(name)
            raise
    info = plugins.info.get(name)
    if not ok or (info is not None and info.error):
        error = info.error if info is not None else "skipped"
        plugins.unregister(name)
        raise ToolkitError(f"plugin '{name}' was skipped: {error}")
    if info is not None and info.skipped:  # a name another plugin registered: the CLI would skip it
        from .errors import RegistryError

        clash = info.skipped[0]
        plugins.unregister(name)
        raise RegistryError(f"plugin '{name}': {clash}")
    try:
        yield plugins
    finally:
        plugins.unregister(name)


if pytest is not None:

    @pytest.fixture
    def register_plugin():
        """``register_plugin(plugin, name)`` registers a plugin until the test ends."""
        with contextlib.ExitStack() as stack:
            yield lambda plugin, name: stack.enter_context(plugin_registered(plugin, name))


# -- a synthetic dataset ---------------------------------------------------------------------
@functools.cache
def _synthetic_options():
    from pydantic import BaseModel, ConfigDict, Field

    class SyntheticOptions(BaseModel):
        """Options of dataset ``synthetic`` (see :func:`synthetic_dataset`)."""

        model_config = ConfigDict(extra="forbid")
        n: int = Field(200, ge=1, le=100_000, description="training images (the test split has n // 4, at least 1)")
        size: int = Field(28, ge=8, le=256, description="image height and width")
        channels: int = Field(1, ge=1, le=4)
        classes: int = Field(4, ge=2, le=16, description="bar positions: classes of attribute 'shape'")
        seed: int = 0

    SyntheticOptions.__module__ = __name__
    return SyntheticOptions


def __getattr__(name: str):
    if name == "SyntheticOptions":  # built on first use: pydantic is not imported with this module
        return _synthetic_options()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def synthetic_dataset(n: int = 200, size: int = 28, channels: int = 1, classes: int = 4, seed: int = 0):
    """``n`` images of one bright vertical bar; attribute ``shape`` is the bar's column band.

    Class k puts the bar in the k-th of ``classes`` equal column bands (names ``bar0``,
    ``bar1``, ...); height, position within the band and brightness vary. Classes are
    balanced; everything follows from ``seed``. Returns a :class:`toolkit.data.ImageSet`.
    """
    import torch

    from .data import ImageSet

    band = size / classes
    if band < 2:
        raise ToolkitError(f"synthetic_dataset: {classes} classes need images of at least {2 * classes} pixels, got {size}")
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    centre = (labels.float() + 0.5 + (torch.rand(n, generator=g) - 0.5) * 0.5) * band
    half = max(0.5, band / 6)
    top = torch.rand(n, generator=g) * size / 4
    bottom = size - 1 - torch.rand(n, generator=g) * size / 4
    brightness = 0.6 + 0.4 * torch.rand(n, channels, generator=g)
    xs = torch.arange(size).float()
    cols = ((xs[None, :] - centre[:, None]).abs() <= half).float()  # (n, W)
    rows = ((xs[None, :] >= top[:, None]) & (xs[None, :] <= bottom[:, None])).float()  # (n, H)
    images = rows[:, None, :, None] * cols[:, None, None, :] * brightness[:, :, None, None]
    images = (images * 255).round().to(torch.uint8)
    return ImageSet(images, {"shape": labels}, {"shape": [f"bar{k}" for k in range(classes)]})


def load_synthetic(options, split: str):
    """Dataset factory of ``synthetic``: ``train`` has ``n`` images, ``test`` ``n // 4`` from another seed."""
    o = options or _synthetic_options()()
    if split not in ("train", "test"):
        raise ToolkitError(f"dataset 'synthetic' has the splits train and test, not '{split}'")
    n, seed = (o.n, o.seed) if split == "train" else (max(1, o.n // 4), o.seed + 1)
    return synthetic_dataset(n, o.size, o.channels, o.classes, seed)


class SyntheticPlugin:
    """A plugin that registers :func:`load_synthetic` as dataset ``synthetic``."""

    @hookimpl
    def register_datasets(self, register):
        register("synthetic", "toolkit.testing:load_synthetic", options=_synthetic_options(),
                 description="bars in class-dependent column bands, for tests; attribute 'shape'")


# -- smoke tests -----------------------------------------------------------------------------
def tiny_spec(classes: int = 4):
    """A small latent spec with every kind of part: u (3), a supervised and a free categorical, a continuous."""
    from .latent import LatentSpec, Variable

    return LatentSpec(3, [
        Variable("shape", "categorical", classes=[f"bar{k}" for k in range(classes)], label="shape"),
        Variable("c1", "continuous"),
        Variable("style", "categorical", classes=["a", "b"]),
    ])


def _check(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _check_tensor(what: str, value, shape: tuple) -> None:
    import torch

    _check(torch.is_tensor(value), f"{what} must be a tensor, got {type(value).__name__}")
    _check(tuple(value.shape) == tuple(shape), f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    _check(bool(torch.isfinite(value).all()), f"{what} has non-finite values")


def _missing_grads(module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]


def _forward(nets, spec, image_shape, batch: int, labels: dict, check=None, terms=None, network: str = ""):
    """One training step's forward passes (the trainer's own :class:`toolkit.train.ForwardPasses`,
    every optional pass on, a moving average of G's and E's weights, and the extra passes of
    ``terms``) on random images and prior codes.

    ``check(what, value, shape)`` is called on each output as soon as it exists; an exception
    inside the networks names ``network`` and its plugin, as in training.
    """
    import torch

    from .ema import WeightAverage
    from .losses import StepOutputs, unlabeled_ratio
    from .train import ForwardPasses

    def checked(what, value, shape):
        if check is not None:
            check(what, value, shape)
        return value

    x_real = torch.rand(batch, *image_shape)
    z_fake = spec.sample(batch)
    passes = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec,
                           needs=frozenset({"swap", "fixed_encoder", "averaged_encoder"}), check=checked, terms=terms,
                           network=network, average=WeightAverage(nets.ge_parts(), 0.99))
    ratio = unlabeled_ratio(terms)
    x_unlabeled = torch.rand(ratio * batch, *image_shape) if ratio else None
    outputs, extra = passes(x_real, z_fake, 1, x_unlabeled)
    return StepOutputs(x_real, labels, z_fake=z_fake, step=1, extra=extra, **outputs)


def smoke_test_network(name: str, options=None, *, image_shape=None, spec=None, batch: int = 4, seed: int = 0):
    """Build network family ``name`` for a tiny latent spec and check its contract.

    Images are ``image_shape``, else the shape the plugin declared (``register(...,
    image_shape=(C, H, W))``), else 1x28x28. Checks: the factory returns
    :class:`toolkit.networks.Networks`; G maps Z ``(B, dim)`` to images in [0, 1]; E maps
    images to a raw code ``(B, dim)`` whose u part is in [-1, 1]; D maps (images, Z) to
    ``(B, 1)`` logits; all finite; one backward pass reaches every trainable parameter; one
    image at a time works in eval mode; the weights round-trip through safetensors into a
    fresh build. Returns the networks.
    """
    import torch
    from safetensors.torch import load, save

    from .networks import build_networks
    from .plugins import registry

    entry = registry("network").get(name)
    shape = tuple(image_shape or entry.extra.get("image_shape") or DEFAULT_IMAGE_SHAPE)
    spec = spec or tiny_spec()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = build_networks(name, spec, shape, options)
        for part in ("generator", "encoder", "discriminator"):
            _check(any(p.requires_grad for p in getattr(nets, part).parameters()),
                   f"network '{name}': the {part} has no trainable parameters")
        nets.train()
        labels = {v.name: torch.arange(batch) % v.size for v in spec.supervised}
        out = _forward(nets, spec, shape, batch, labels, network=name,
                       check=lambda what, value, want: _check_tensor(f"network '{name}': {what}", value, want))
        _check(out.x_fake.min() >= 0 and out.x_fake.max() <= 1, f"network '{name}': G(z) must be in [0, 1] (end with a sigmoid)")
        u = out.raw_real[:, spec.slices["u"]]
        _check(u.min() >= -1 and u.max() <= 1, f"network '{name}': the u part of E(x) must be in [-1, 1] (a tanh on it)")
        total = sum(t.float().mean() for t in (out.x_fake, out.x_rec, out.raw_real, out.raw_fake, out.d_real, out.d_fake))
        total.backward()
        for part in ("generator", "encoder", "discriminator"):
            missing = _missing_grads(getattr(nets, part))
            _check(not missing, f"network '{name}': no gradient reaches {part} parameters {missing[:5]}")
        bad = [n for n, p in nets.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        _check(not bad, f"network '{name}': non-finite gradients in {bad[:5]}")

        nets.eval()  # translate and generate run one image at a time in eval mode
        with torch.no_grad():
            z = spec.sample(1)
            _check_tensor(f"network '{name}': G(z) in eval mode, batch 1", nets.generator(z), (1, *shape))
            _check_tensor(f"network '{name}': E(x) in eval mode, batch 1", nets.encoder(torch.rand(1, *shape)), (1, spec.dim))
            expected = nets.generator(z)
        try:
            weights = load(save({k: v.detach().contiguous() for k, v in nets.state_dict().items()}))
        except Exception as exc:
            raise AssertionError(f"network '{name}': the weights cannot be saved as safetensors: {exc}") from None
        fresh = build_networks(name, spec, shape, options)
        try:
            fresh.load_state_dict(weights)
        except RuntimeError as exc:
            raise AssertionError(f"network '{name}': a fresh build does not take the saved weights: {exc}") from None
        fresh.eval()
        with torch.no_grad():
            _check(torch.allclose(fresh.generator(z), expected),
                   f"network '{name}': a fresh build with the saved weights generates other images (state outside the state dict?)")
    nets.zero_grad(set_to_none=True)
    nets.train()
    return nets


def linear_networks(spec, image_shape=DEFAULT_IMAGE_SHAPE):
    """Minimal G, E and D (one linear layer each) honouring the network contract, for loss tests."""
    import math

    import torch
    from torch import nn

    from .networks import Networks

    pixels = math.prod(image_shape)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, spec.dim))

        def forward(self, x):
            raw = self.net(x)
            return torch.cat([torch.tanh(raw[:, : spec.u_size]), raw[:, spec.u_size :]], dim=1)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(pixels + spec.dim, 1)

        def forward(self, x, z):
            return self.net(torch.cat([x.flatten(1), z], dim=1))

    generator = nn.Sequential(nn.Linear(spec.dim, pixels), nn.Sigmoid(), nn.Unflatten(1, tuple(image_shape)))
    return Networks(generator, Encoder(), Discriminator())


def smoke_test_loss(name: str, options=None, *, spec=None, image_shape=DEFAULT_IMAGE_SHAPE, batch: int = 4, seed: int = 0):
    """Build loss term ``name`` and feed it one training step's outputs from :func:`linear_networks`.

    Checks, on a batch with partial labels and on one without any label: the term returns a
    non-empty dict with keys among ``"ge"`` and ``"d"``; each value is a finite scalar
    tensor; ``"ge"`` sends gradients to G or E and ``"d"`` to D (as the trainer's two updates
    need). Returns the first call's dict.
    """
    import torch

    from .losses import build_losses, loss_problem
    from .recipe import LossConfig
    from .registry import options_dict

    spec = spec or tiny_spec()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        (term,) = build_losses({name: LossConfig(options=options_dict(options))}, spec).values()
        _check(callable(term), f"loss '{name}': the factory must return a callable LossTerm, got {type(term).__name__}")
        nets = linear_networks(spec, image_shape)
        partial = {v.name: torch.where(torch.arange(batch) % 2 == 0, torch.arange(batch) % v.size, -1) for v in spec.supervised}
        unlabeled = {v.name: torch.full((batch,), -1) for v in spec.supervised}
        first = None
        for case, labels in (("partial labels", partial), ("no labels", unlabeled)):
            nets.zero_grad(set_to_none=True)
            parts = term(_forward(nets, spec, image_shape, batch, labels, terms={name: term}))
            where = f"loss '{name}' ({case})"
            # the same rules the trainer applies at every step (toolkit.losses.run_term)
            problem = loss_problem(parts, finite=True)
            _check(problem is None, f"{where} {problem}")
            for key, params, who in (("ge", nets.ge_parameters(), "G or E"), ("d", nets.d_parameters(), "D")):
                if key not in parts:
                    continue
                grads = torch.autograd.grad(parts[key], params, retain_graph=True, allow_unused=True)
                _check(any(g is not None for g in grads), f"{where}: part '{key}' sends no gradient to {who}")
                _check(all(torch.isfinite(g).all() for g in grads if g is not None), f"{where}: part '{key}' has non-finite gradients")
            first = first or parts
    return first


def smoke_test_recipe(recipe, run_dir, overrides=(), steps: int = 2):
    """Train a recipe (a YAML path or a dict) for ``steps`` steps on the CPU, then translate with it.

    ``overrides`` are ``--set`` style ``key.path=value`` strings (shrink the data here). Loads
    the checkpoint as ``toolkit translate`` would and sets the class variable on two images.
    Returns the loaded :class:`toolkit.model.Model`.
    """
    import torch

    from .data import load_dataset
    from .model import load_model
    from .plugins import resolve
    from .recipe import Origin, apply_overrides, parse_recipe, read_yaml
    from .train import Trainer

    data = read_yaml(Path(recipe)) if isinstance(recipe, (str, Path)) else copy.deepcopy(recipe)
    train = [f"train.steps={steps}", "train.device=cpu", "train.log_every=1", f"train.sample_every={steps}",
             f"train.checkpoint_every={steps}"]
    given = [*train, *overrides]
    origin = Origin.of(recipe, given) if isinstance(recipe, (str, Path)) else Origin()
    resolved = resolve(parse_recipe(apply_overrides(data, given)), origin=origin)
    trainer = Trainer(resolved, Path(run_dir), "cpu")
    result = trainer.run()
    _check(result["step"] == steps and Path(result["checkpoint"]).is_file(), f"training stopped early: {result}")
    model = load_model(result["checkpoint"])
    images = load_dataset(resolved, "train").images[:2].float() / 255
    var = model.spec.class_variable()
    edited = model.translate(images, {var.name: var.size - 1} if var else {})
    _check_tensor("translated images", edited, tuple(images.shape))
    _check(bool((edited >= 0).all() and (edited <= 1).all()), "translated images must be in [0, 1]")
    _check(torch.is_tensor(model.generate(2, seed=0)), "generate failed")
    return model
