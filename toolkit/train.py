"""The training loop: one readable place where data flows one way.

batch -> priors -> forward passes -> named outputs -> loss terms -> one D update and one
G/E update, both from gradients taken at the same parameters (as the authors' code does).
Nothing in the step waits on the device; losses are read back every ``log_every`` steps.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import checks, distributed, speed
from .augment import augment
from .data import LabeledSampler, load_dataset, select_labels
from .distributed import World, pick_device
from .ema import WeightAverage
from .errors import PluginError, RecipeError, ToolkitError, exception_line
from .evaluate import evaluate
from .files import atomic_write
from .images import save_grid
from .latent import LatentSpec, build_spec
from .losses import StepOutputs, build_losses, describe_bad_loss, has_extra_passes, loss_origin, ramp_factor, run_term, unlabeled_ratio
from .model import Model
from .networks import build_networks, network_failure, reestimating_norms, with_fixed_weights
from .plugins import plugin_versions
from .recipe import Recipe, to_yaml
from .rundir import RunDir

NEVER = torch.tensor(2**62)


class TrainingStopped(ToolkitError):
    """Training stopped early (a non-finite loss); the last good checkpoint is kept."""


class ForwardPasses(torch.nn.Module):
    """The six forward passes of one step, as one module (the unit DDP wraps).

    Returns what :class:`~toolkit.losses.StepOutputs` needs besides the batch, in fp32 whatever
    the autocast precision. ``check(what, value, shape)``, when given, sees each output as soon
    as it exists and returns it (the smoke tests in :mod:`toolkit.testing` run these passes).
    """

    def __init__(self, generator, encoder, discriminator, spec: LatentSpec, precision: str = "fp32",
                 needs: frozenset = frozenset(), check=None, terms: dict | None = None, d_augment: tuple = (),
                 network: str = "", average: WeightAverage | None = None, d_code: str = "soft",
                 d_batch: str = "separate"):
        super().__init__()
        self.generator, self.encoder, self.discriminator = generator, encoder, discriminator
        self.spec, self.precision, self.check, self.network = spec, precision, check, network
        self.average = average  # train.ema's moving average of G's and E's weights (or None)
        self.swap, self.fixed_encoder = "swap" in needs, "fixed_encoder" in needs
        self.labeled_reconstruction = "labeled_reconstruction" in needs  # losses.rec.options.code: labels
        # terms with passes of their own (not submodules: they hold no weights of their own)
        self._extra_terms = {name: t for name, t in (terms or {}).items() if has_extra_passes(t)}
        self.d_augment = tuple(d_augment)
        self.d_code = d_code  # train.d_code: what D sees of E(x)'s categorical parts
        self.d_batch = d_batch  # train.d_batch: real and generated pairs through D as two batches or one

    @torch.no_grad()
    def averaged_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """E with the moving average of its weights (``train.ema``) on ``x`` ``(B, C, H, W)`` in
        [0, 1]: raw codes ``(B, dim)``, without gradients. BatchNorm normalises with the batch's
        own statistics, as in training; E's running statistics are left as they are (the pass
        works on copies). A term that calls it declares ``"averaged_encoder"`` in ``needs``, so a
        recipe without ``train.ema`` is refused before training.

        Raises:
            RecipeError: the run keeps no moving average (``train.ema`` is off).
        """
        if self.average is None:
            raise RecipeError("a loss term reads E's averaged weights, but train.ema is off: set train.ema (e.g. 0.999)")
        module = getattr(self.encoder, "_orig_mod", self.encoder)  # torch.compile's wrapper shares these weights
        state = {name: b.clone() for name, b in module.named_buffers()}
        state.update(self.average.averages_of("encoder"))
        return torch.func.functional_call(module, state, (x,))

    def _d_view(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees of an image batch: DiffAugment's transform when ``train.d_augment`` names one."""
        return augment(x, self.d_augment) if self.d_augment else x

    def _judge(self, x_real, z_real, x_fake, z_fake) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits ``(B, 1)`` for the real pairs and the generated pairs: two calls, or one on
        both batches joined (``train.d_batch: joint``: D's BatchNorm sees them together)."""
        if self.d_batch == "joint":
            both = self.discriminator(self._d_view(torch.cat([x_real, x_fake])), torch.cat([z_real, z_fake]))
            return both[: len(x_real)], both[len(x_real) :]
        return (self.discriminator(self._d_view(x_real), z_real),
                self.discriminator(self._d_view(x_fake), z_fake))

    def _d_code(self, z_real: torch.Tensor, labels: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """The code D sees beside a real image (``train.d_code``): E's soft code, its one-hots
        (straight-through), or those with the labeled rows' labels."""
        if self.d_code == "soft":
            return z_real
        hard = self.spec.harden(z_real)
        return self.spec.with_labels(hard, labels) if self.d_code == "labels" and labels else hard

    def forward(self, x_real: torch.Tensor, z_fake: torch.Tensor, step: int = 0, x_unlabeled: torch.Tensor | None = None,
                labels: dict[str, torch.Tensor] | None = None):
        """Returns ``(outputs, extra)``: the named outputs in fp32, and each extra-pass term's tensors.

        ``x_unlabeled``: the more real images that terms with an ``unlabeled_ratio`` read in
        their own passes (:class:`~toolkit.losses.LossTerm`), or None. ``labels``: per supervised
        variable, class indices ``(B,)`` (-1: none), for ``train.d_code: labels`` and a
        reconstruction from labels (``"labeled_reconstruction"`` in ``needs``).

        An exception inside the networks is one line naming the network's plugin (traceback with
        ``--debug``); one inside a term's extra passes names the loss term.
        """
        try:
            return self._passes(x_real, z_fake, step, x_unlabeled, labels)
        except ToolkitError:
            raise
        except Exception as exc:  # inside a network plugin: one line naming it (traceback with --debug)
            if isinstance(exc, AssertionError) and self.check is not None:
                raise  # a smoke test's check says what broke (toolkit.testing)
            raise network_failure(self.network, exc, len(x_real)) from exc

    def _passes(self, x_real: torch.Tensor, z_fake: torch.Tensor, step: int, x_unlabeled: torch.Tensor | None,
                labels: dict[str, torch.Tensor] | None = None):
        seen = self.check or _as_is
        image, code, logit = tuple(x_real.shape), (len(x_real), self.spec.dim), (len(x_real), 1)
        with speed.autocast(self.precision, x_real.device):
            x_fake = seen("G(z)", self.generator(z_fake), image)
            raw_real = seen("E(x)", self.encoder(x_real), code)
            z_real = self.spec.code(raw_real.float())
            z_rec = self.spec.with_labels(z_real, labels) if self.labeled_reconstruction and labels else z_real
            x_rec = seen("G(E(x))", self.generator(z_rec), image)
            raw_fake = seen("E(G(z))", self.encoder(x_fake), code)
            z_real_d = self._d_code(z_real, labels)
            d_real, d_fake = self._judge(x_real, z_real_d, x_fake, z_fake)
            d_real, d_fake = seen("D(x, E(x))", d_real, logit), seen("D(G(z), z)", d_fake, logit)
            out = {"raw_real": raw_real, "z_real": z_real, "x_rec": x_rec, "x_fake": x_fake,
                   "raw_fake": raw_fake, "d_real": d_real, "d_fake": d_fake}
            if self.fixed_encoder:
                out["raw_fake_fixed"] = seen("E(G(z)), E's weights held fixed", with_fixed_weights(self.encoder, x_fake), code)
            if self.swap:  # translations: u of the real image, variables of the prior sample
                x_swap = self.generator(self.spec.with_variables_of(z_real, z_fake))
                out["raw_swap"] = seen("E(G(u of E(x), c of z))", self.encoder(x_swap), code)
                if self.fixed_encoder:
                    out["raw_swap_fixed"] = seen("E(G(u of E(x), c of z)), E's weights held fixed",
                                                 with_fixed_weights(self.encoder, x_swap), code)
            batch = {"x_real": x_real, "z_fake": z_fake, "z_real": z_real, "z_real_d": z_real_d, "x_fake": x_fake,
                     "raw_real": raw_real}
            if x_unlabeled is not None:
                batch["x_unlabeled"] = x_unlabeled
            extra = {name: self._extra_passes(name, term, batch, step) for name, term in self._extra_terms.items()}
        return {k: v.float() for k, v in out.items()}, extra

    def _extra_passes(self, name: str, term, batch: dict, step: int) -> dict:
        """A loss term's own passes; an exception inside them is one line naming the term and its plugin."""
        try:
            views = term.extra_passes(self, batch, step)
        except ToolkitError:
            raise
        except Exception as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise  # the step's batch is too large: said once, in forward
            raise PluginError(f"{loss_origin(name)} failed in its extra passes: {exception_line(exc)}") from exc
        if views is None:
            return {}  # a lazy term's off step
        if not isinstance(views, dict):
            raise PluginError(f"{loss_origin(name)} returned {type(views).__name__} from extra_passes, expected a dict "
                              "of tensors by name ({} on a step it skips)")
        return views


def _as_is(what: str, value: torch.Tensor, shape: tuple) -> torch.Tensor:
    return value


def check_loss_terms(recipe, networks, spec, data, labels: dict) -> None:
    """Every loss term of the recipe on one step's forward passes (the trainer's own
    :class:`toolkit.train.ForwardPasses`, with the recipe's passes) of 4 training images, two of
    them labeled where labels exist, checked as training checks each step
    (:func:`toolkit.losses.run_term`): a term that raises or returns what training refuses is
    refused before the run, in the same one line, not at step 1. Runs on a copy of ``networks``
    (on the CPU) and fresh terms, under its own random numbers: the run itself is unchanged.

    ``labels``: per supervised variable, the chosen labels of every training image (-1: none).
    """
    networks = copy.deepcopy(networks).cpu()  # the run's own networks keep their BatchNorm statistics
    terms = build_losses({name: cfg for name, cfg in recipe.losses.items() if cfg.weight}, spec)  # fresh: no state kept
    needs = frozenset().union(*(getattr(t, "needs", frozenset()) for t in terms.values()))
    known = torch.zeros(len(data), dtype=torch.bool)
    for lab in labels.values():
        known |= lab.cpu() >= 0
    rows = torch.cat([known.nonzero().flatten()[:2], (~known).nonzero().flatten()[:2]])
    if len(rows) < 2:
        rows = torch.arange(min(len(data), 2))
    average = WeightAverage(networks.ge_parts(), recipe.train.ema or 0.99) if "averaged_encoder" in needs else None
    passes = ForwardPasses(networks.generator, networks.encoder, networks.discriminator, spec, needs=needs,
                           terms=terms, d_augment=recipe.train.d_augment, network=recipe.model.network,
                           average=average, d_code=recipe.train.d_code, d_batch=recipe.train.d_batch)
    x_real = data.images[rows].float() / 255
    row_labels = {name: lab.cpu()[rows] for name, lab in labels.items()}
    ratio = unlabeled_ratio(terms)
    x_unlabeled = data.images[torch.arange(ratio * len(rows)) % len(data)].float() / 255 if ratio else None
    with torch.random.fork_rng(devices=[]):  # the run's random numbers stay as they would be without the check
        z_fake = spec.sample(len(rows))
        outputs, extra = passes(x_real, z_fake, 1, x_unlabeled, row_labels)
        out = StepOutputs(x_real, row_labels, z_fake=z_fake, step=1, extra=extra, **outputs)
        for name, term in terms.items():
            run_term(name, term, out)


class Trainer:
    """Holds the run's state; :meth:`run` trains to ``recipe.train.steps``."""

    def __init__(self, recipe: Recipe, run_dir: Path, device: str = "auto", console=None, world: World = World()):
        self.recipe, self.console, self.world = recipe, console, world
        self.folder = RunDir(run_dir)
        self.device = pick_device(device)
        if recipe.optim.batch_size % world.size:
            raise ToolkitError(f"optim.batch_size {recipe.optim.batch_size} does not split evenly over {world.size} processes")
        torch.manual_seed(recipe.seed)
        train = load_dataset(recipe, "train")
        self.spec = build_spec(recipe, train)
        checks.check_data(recipe, train, self.spec)  # before any memory is taken (toolkit.checks)
        self.image_shape = train.shape
        supervised = {v.label: v.size for v in self.spec.supervised}
        label_seed = recipe.data.label_seed if recipe.data.label_seed is not None else recipe.seed
        labels = select_labels(train, supervised, recipe.data.labels, label_seed)
        self.labels = {v.name: labels[v.label].to(self.device) for v in self.spec.supervised}
        self.sampler = LabeledSampler(labels, len(train), recipe.optim.batch_size, recipe.data.labeled_ramp,
                                      recipe.seed + 1, recipe.data.labeled_floor)
        fast = recipe.train.speed
        self.layout = speed.memory_format(fast.channels_last)
        self.images = train.images.to(self.device)  # the whole (uint8) data set lives on the device
        self.networks = build_networks(recipe.model.network, self.spec, self.image_shape, recipe.model.options)
        checks.check_networks(recipe, self.networks, world.size, spec=self.spec, image_shape=self.image_shape)
        check_loss_terms(recipe, self.networks, self.spec, train, self.labels)  # a broken term: now, not at step 1
        if world.distributed:
            distributed.global_batchnorm(self.networks)
        self.networks.to(self.device, memory_format=self.layout)
        # a term at weight 0 is off: not built, so its extra passes (and the outputs only it needs) cost nothing
        self.losses = build_losses({name: cfg for name, cfg in recipe.losses.items() if cfg.weight}, self.spec)
        needs = frozenset().union(*(term.needs for term in self.losses.values()))
        if "averaged_encoder" in needs and not recipe.train.ema:
            users = [n for n, t in self.losses.items() if "averaged_encoder" in t.needs]
            raise RecipeError(f"losses.{users[0]} reads E's averaged weights, but train.ema is off: "
                              "set train.ema (e.g. 0.999) or let the term read E's own weights")
        self.average = WeightAverage(self.networks.ge_parts(), recipe.train.ema) if recipe.train.ema else None
        self.forward = ForwardPasses(*speed.step_networks(self.networks, fast), self.spec, fast.precision, needs,
                                     terms=self.losses, d_augment=recipe.train.d_augment, network=recipe.model.network,
                                     average=self.average, d_code=recipe.train.d_code,
                                     d_batch=recipe.train.d_batch)
        if world.distributed:
            self.forward = distributed.wrap(self.forward, self.device)
            # rank-specific noise inside the networks (after DDP copied rank 0's weights)
            torch.manual_seed(recipe.seed + 1_000_003 * world.rank)
        # prior codes of the global batch: the same on every rank
        self.z_rng = torch.Generator(device=self.device).manual_seed(recipe.seed + 2)
        # FixMatch's mu: more real images per batch row for the terms that read them (uniform, labels unused)
        self.unlabeled_ratio = unlabeled_ratio(self.losses)
        self.unlabeled_rng = torch.Generator().manual_seed(recipe.seed + 3)
        o = recipe.optim
        self.opt_d = speed.adam(self.networks.d_parameters(), o.lr_d, o.betas, fast.optimizer, self.device)
        self.opt_ge = speed.adam(self.networks.ge_parameters(), o.lr_ge, o.betas, fast.optimizer, self.device)
        self.step = 0
        self.seconds_before = 0.0  # training time of earlier sessions of this run (resumed runs)
        self.fixed_z = self._grid_latents()
        self.test = None
        self.tb = None
        self._inference = None
        self._sums: dict[str, torch.Tensor] = {}
        self._first_bad: dict[str, torch.Tensor] = {}
        self._count = 0

    # -- one step ------------------------------------------------------------------------
    def _on_device(self, index: torch.Tensor) -> torch.Tensor:
        """``index`` (CPU int64) on the device; from pinned memory the copy is asynchronous."""
        return (index.pin_memory() if self.device.type == "cuda" else index).to(self.device, non_blocking=True)

    def _real_images(self, index: torch.Tensor) -> torch.Tensor:
        """The training images at ``index`` (on the device), as floats in [0, 1]."""
        return self.images[index].float().div_(255.0).contiguous(memory_format=self.layout)

    def train_step(self, step: int) -> None:
        """One D update and one G/E update (1-based ``step``)."""
        dev, world = self.device, self.world
        index, _ = self.sampler.draw(step)
        z_fake = self.spec.sample(len(index), generator=self.z_rng, device=dev)
        more = None  # (B, mu): the more real images of each batch row, for terms with an unlabeled_ratio
        if self.unlabeled_ratio:
            more = torch.randint(len(self.images), (len(index), self.unlabeled_ratio), generator=self.unlabeled_rng)
        if world.distributed:  # every rank drew the global batch: keep this rank's slice
            share = len(index) // world.size
            mine = slice(world.rank * share, (world.rank + 1) * share)
            index, z_fake = index[mine], z_fake[mine]
            more = None if more is None else more[mine]
        index = self._on_device(index)
        x_real = self._real_images(index)
        labels = {name: lab[index] for name, lab in self.labels.items()}
        x_unlabeled = None if more is None else self._real_images(self._on_device(more.flatten()))
        outputs, extra = self.forward(x_real, z_fake, step, x_unlabeled, labels)
        out = StepOutputs(x_real, labels, z_fake=z_fake, step=step, extra=extra, **outputs)

        ge_total, d_total = 0.0, 0.0
        for name, term in self.losses.items():
            cfg = self.recipe.losses[name]
            parts = run_term(name, term, out)  # checked as the smoke tests check it (toolkit.losses)
            if "ge" in parts:
                ge_total = ge_total + cfg.weight * ramp_factor(step, cfg.ramp) * parts["ge"]
                self._accumulate(name, parts["ge"])
            if "d" in parts:
                d_total = d_total + cfg.weight * parts["d"]
                self._accumulate(f"{name}_d", parts["d"])
        self._count += 1

        factor = self.recipe.optim.lr_factor(step)
        for opt, lr in ((self.opt_d, self.recipe.optim.lr_d), (self.opt_ge, self.recipe.optim.lr_ge)):
            for group in opt.param_groups:
                group["lr"] = lr * factor
            opt.zero_grad(set_to_none=True)
        if torch.is_tensor(d_total) and d_total.requires_grad:
            d_total.backward(inputs=self.networks.d_parameters(), retain_graph=True)
        if torch.is_tensor(ge_total) and ge_total.requires_grad:
            ge_total.backward(inputs=self.networks.ge_parameters())
        self.opt_d.step()
        self.opt_ge.step()
        if self.average is not None:
            self.average.update(step)

    def _accumulate(self, name: str, value: torch.Tensor) -> None:
        value = value.detach()
        self._sums[name] = self._sums[name] + value if name in self._sums else value.clone()
        # the first step at which this term was not finite, kept on the device (no sync)
        never = self._first_bad.get(name, NEVER)
        self._first_bad[name] = torch.where(torch.isfinite(value), never, torch.minimum(never, torch.tensor(self.step)))

    def read_losses(self) -> dict[str, float]:
        """Mean of each loss term since the last call, over the steps and the ranks (one host
        synchronisation; every rank gets the same numbers)."""
        if not self._count:
            return {}
        names = list(self._sums)
        values = distributed.all_mean(torch.stack([self._sums[n] for n in names]) / self._count, self.world)
        self._sums, self._count = {}, 0
        return dict(zip(names, values.tolist()))

    # -- grids, evaluation, checkpoints ----------------------------------------------------
    def _grid_latents(self, columns: int = 10) -> torch.Tensor:
        """Fixed latents: one row per class of the class variable, shared style per column."""
        g = torch.Generator().manual_seed(self.recipe.seed + 12345)
        style = self.spec.sample(columns, generator=g)
        return self.spec.class_grid(style, rows_without_class=8).to(self.device)

    @torch.no_grad()
    def inference_networks(self, averaged: bool = True):
        """A copy of the networks in eval mode, with BatchNorm statistics re-estimated.

        With ``train.ema`` the copy's G and E hold the averaged weights unless ``averaged`` is False.

        Training uses batch statistics; inference uses running statistics, which with the
        code's momentum (0.001) lag far behind early in training (samples come out black).
        The copy replays ``train.bn_recalibration`` forward passes of the step (G on prior
        codes and on encoder codes, E on real and generated images) with a cumulative average.
        Only the copy changes (and the checkpoint written from it); the training state does not,
        and no global random numbers are drawn, so resume stays exact.
        """
        averaged = averaged and self.average is not None
        if self._inference is not None and self._inference[0] == (self.step, averaged):
            return self._inference[1]
        nets = distributed.unsynced(copy.deepcopy(self.networks))
        if averaged:
            self.average.copy_to(nets.ge_parts())
        batches = self.recipe.train.bn_recalibration
        if batches:
            g = torch.Generator().manual_seed(self.recipe.seed + 7)
            size = self.recipe.optim.batch_size
            with reestimating_norms(nets.generator, nets.encoder):
                for _ in range(batches):
                    index = torch.randint(len(self.images), (size,), generator=g).to(self.device)
                    x_real = self.images[index].float().div_(255.0)
                    x_fake = nets.generator(self.spec.sample(size, generator=g).to(self.device))
                    nets.generator(self.spec.code(nets.encoder(x_real)))
                    nets.encoder(x_fake)
        nets.eval()
        self._inference = ((self.step, averaged), nets)
        return nets

    @torch.no_grad()
    def save_samples(self) -> Path:
        images = self.inference_networks().generator(self.fixed_z)
        return save_grid(images, self.folder.sample(self.step), nrow=10)

    def _checkpoint_meta(self) -> dict:
        return ckpt.checkpoint_meta(self.recipe, self.spec, self.image_shape, self.step, plugin_versions())

    def save(self) -> Path:
        """Write the checkpoint of this step, prune old ones, then the resume file (rank 0 only)."""
        path = self.folder.checkpoint(self.step)
        if not self.world.is_main:
            return path
        meta = self._checkpoint_meta()
        ckpt.save_checkpoint(path, self.inference_networks(), meta)
        for old in self.folder.checkpoint_files()[: -self.recipe.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
        tensors = {f"model.{k}": v for k, v in self.networks.state_dict().items()}
        info = {}
        for prefix, opt in (("opt_d", self.opt_d), ("opt_ge", self.opt_ge)):
            t, i = ckpt.flatten_optimizer(prefix, opt)
            tensors.update(t)
            info[prefix] = i
        if self.average is not None:
            tensors.update(self.average.state_dict())
        # the loss sums since the last log step, so that the next metrics row is the same after a resume
        tensors.update({f"losses.sum.{k}": v for k, v in self._sums.items()})
        tensors.update({f"losses.first_bad.{k}": v for k, v in self._first_bad.items()})
        for name, term in self.losses.items():  # running statistics of terms that keep some (LossTerm.state_dict)
            state = term.state_dict() if hasattr(term, "state_dict") else {}
            tensors.update({f"losses.state.{name}.{k}": v.detach() for k, v in state.items()})
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["rng.sampler"] = self.sampler.state()
        tensors["rng.z"] = self.z_rng.get_state()
        tensors["rng.unlabeled"] = self.unlabeled_rng.get_state()
        resume_meta = dict(meta, kind="resume", optimizers=info, loss_steps=self._count, loss_names=list(self._sums),
                           bad_names=list(self._first_bad))
        ckpt.write_safetensors(self.folder.resume, tensors, resume_meta)
        return path

    def load_resume(self) -> list[str]:
        """Restore the state saved by :meth:`save`; returns notes for the user."""
        path = self.folder.resume
        meta = ckpt.read_meta(path)
        tensors = ckpt.read_tensors(path)
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.networks.load_state_dict(model)
        except RuntimeError as exc:
            raise ToolkitError(f"{path}: weights do not match this recipe's networks: {str(exc).splitlines()[0]}") from None
        for prefix, opt in (("opt_d", self.opt_d), ("opt_ge", self.opt_ge)):
            opt.load_state_dict(ckpt.unflatten_optimizer(prefix, tensors, meta["optimizers"][prefix]))
        notes = []
        if self.average is not None and not self.average.load_state_dict(tensors):
            notes.append(f"{path.name} holds no weight averages (train.ema was off): they start from the weights of step {meta['step']}")
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.sampler.load_state(tensors["rng.sampler"])
        if "rng.z" in tensors:
            self.z_rng.set_state(tensors["rng.z"])
        if "rng.unlabeled" in tensors:
            self.unlabeled_rng.set_state(tensors["rng.unlabeled"])
        self._sums = {k: tensors[f"losses.sum.{k}"].to(self.device) for k in meta.get("loss_names", [])}
        self._first_bad = {k: tensors[f"losses.first_bad.{k}"].to(self.device) for k in meta.get("bad_names", [])}
        for name, term in self.losses.items():
            prefix = f"losses.state.{name}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if state and hasattr(term, "load_state_dict"):
                term.load_state_dict(state)
        self._count = int(meta.get("loss_steps", 0))
        self.step = int(meta["step"])
        if self.world.is_main:  # rows of steps after the saved one (a run killed since) are written again
            self.folder.keep_metrics_until(self.step)
            self.seconds_before = self.folder.seconds_until(self.step)  # the clock goes on from there
        if self.world.distributed:  # the other ranks' noise streams are not saved: reseed them
            torch.manual_seed(self.recipe.seed + 1_000_003 * self.world.rank + self.step)
        return notes

    # -- the loop ------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        if not self.world.is_main:
            return
        with open(self.folder.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, progress=None) -> dict:
        """Train until ``recipe.train.steps``; stop on a non-finite loss.

        SIGTERM or Ctrl-C (SIGINT) lets the step in progress finish, then saves and returns
        (``interrupted``, ``signal``); the same signal again during the save does not stop it.
        """
        cfg, main = self.recipe.train, self.world.is_main
        if main:
            self.folder.create()
            self.folder.recipe.write_text(to_yaml(self.recipe))
            self.tb = _tensorboard(self.folder.tensorboard)
        stop = {"signal": None, "agreed": False}  # with several ranks, they agree at log steps

        def stopping() -> bool:
            return stop["agreed"] if self.world.distributed else stop["signal"] is not None

        def on_signal(signum, frame):  # the step in progress finishes; later signals change nothing
            stop["signal"] = stop["signal"] or signum

        previous = _catch_signals(on_signal)
        last, started, start_step = {}, time.time(), self.step
        try:
            while self.step < cfg.steps and not stopping():
                self.step += 1
                self.train_step(self.step)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    last = self.read_losses()
                    if self.world.distributed and distributed.any_rank(stop["signal"] is not None, self.device, self.world):
                        stop["agreed"] = True
                        stop["signal"] = stop["signal"] or signal.SIGTERM
                    if not all(math.isfinite(v) for v in last.values()):
                        self._stop_on_bad_loss(last)
                    self._scalars({f"loss/{k}": v for k, v in last.items()})
                    elapsed = time.time() - started
                    self.log({"step": self.step, "time": round(self.seconds_before + elapsed, 2), "losses": last,
                              "p_labeled": self.sampler.probability(self.step),
                              "lr_factor": self.recipe.optim.lr_factor(self.step),
                              "steps_per_s": round((self.step - start_step) / max(elapsed, 1e-9), 3)})
                if self.step % cfg.sample_every == 0 and main:
                    self.save_samples()
                # evaluation before the save: a run killed in between resumes before both and redoes both
                if self.step % cfg.checkpoint_every == 0 and self.step != cfg.steps:
                    self.full_evaluation()
                    self.save()
                elif self.recipe.evaluate.every and self.step % self.recipe.evaluate.every == 0 and self.step != cfg.steps:
                    self.full_evaluation()
                if progress is not None:
                    progress(self.step, last)
            interrupted = stop["signal"] is not None  # stop promptly: no final evaluation
            record = {} if interrupted else self.full_evaluation()
            if main:
                self.save_samples()
            path = self.save()  # a second Ctrl-C or SIGTERM does not stop the save
            # every rank leaves together: one that tears its process group down while another
            # still evaluates or saves can abort in gloo's teardown (SIGABRT)
            distributed.barrier(self.world)
        finally:
            _restore_signals(previous)
        result = {"step": self.step, "checkpoint": str(path), "interrupted": interrupted, "signal": stop["signal"],
                  "encoder_accuracy": record.get("encoder_accuracy", {}), "evaluation": record,
                  "seconds": round(time.time() - started, 1)}
        if self.tb is not None:
            self.tb.close()
        return result

    def _stop_on_bad_loss(self, last: dict) -> None:
        first = {k: int(v) for k, v in self._first_bad.items() if int(v) < int(NEVER)}
        name = min(first, key=first.get) if first else next(k for k, v in last.items() if not math.isfinite(v))
        step = first.get(name, self.step)
        good = self.folder.checkpoint_before(step)
        fallback = (f"the last checkpoint before it is {good}" if good is not None else
                    "no checkpoint was written before it (lower the learning rates or check the loss terms and data)")
        raise TrainingStopped(f"{describe_bad_loss(name, last[name], step, self.losses)}; stopped; {fallback}")

    def full_evaluation(self) -> dict:
        """``toolkit evaluate`` on the networks as they are now, logged to metrics and TensorBoard.

        Returns the record written to metrics.jsonl: encoder accuracy per supervised variable and
        reconstruction MSE, and when the recipe's classifier exists generator error (overall and
        per class), translation accuracy and the best checkpoint's record; {} without a test split
        (and on ranks other than the first).
        The evaluation draws no random numbers that training would see (the global generators are
        saved and put back), so a run's weights do not depend on how often it is evaluated.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self._full_evaluation()

    def _full_evaluation(self) -> dict:
        cfg = self.recipe.evaluate
        if not self.world.is_main:
            return {}
        if self.test is None:
            try:
                self.test = load_dataset(self.recipe, "test")
            except (ToolkitError, ValueError):
                self.test = False
        if not self.test:
            return {}
        judge = cfg.classifier_path()
        judge = judge if judge is not None and judge.is_file() else None
        model = Model(self.spec, self.inference_networks(), self.recipe, self.image_shape, self.step)
        report = evaluate(model, judge, cfg.samples_per_class, cfg.seed, test=self.test)
        record = {"step": self.step, "encoder_accuracy": report["encoder_accuracy"],
                  "encoder_balanced_accuracy": report["encoder_balanced_accuracy"],
                  "reconstruction_mse": report["reconstruction_mse"]}
        scalars = {f"encoder_accuracy/{k}": v for k, v in report["encoder_accuracy"].items()}
        scalars["reconstruction_mse"] = report["reconstruction_mse"]
        if "generator_error" in report:
            record["generator_error"] = report["generator_error"]["overall"]
            record["generator_error_per_class"] = report["generator_error"]["per_class"]
            record["generator_spread"] = report["generator_error"]["spread"]
            if report["generator_error"].get("real_spread") is not None:
                record["real_spread"] = report["generator_error"]["real_spread"]
            record["translation_accuracy"] = report["translation_accuracy"]["overall"]
            scalars["generator_error"] = report["generator_error"]["overall"]
            scalars["translation_accuracy"] = report["translation_accuracy"]["overall"]
            record["best"] = self._keep_if_best(record)
        self.log(record)
        self._scalars(scalars)
        return record

    def _keep_if_best(self, record: dict) -> dict:
        """Write ``best.safetensors`` when this evaluation has the lowest generator error so far
        (ties: the later step); returns the best record (step and figures)."""
        path = self.folder.best_record
        best = json.loads(path.read_text()) if path.is_file() else None
        if best is not None and best["step"] != self.step and best["generator_error"] < record["generator_error"]:
            return best
        meta = self._checkpoint_meta()
        ckpt.save_checkpoint(self.folder.best, self.inference_networks(), meta)
        best = {k: record[k] for k in ("step", "generator_error", "translation_accuracy", "encoder_accuracy")}
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(best, indent=2)))
        return best

    def _scalars(self, values: dict) -> None:
        if self.tb is not None:
            for name, value in values.items():
                self.tb.add_scalar(name, value, self.step)
            self.tb.flush()


def _tensorboard(folder: Path):
    """A TensorBoard writer when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def _catch_signals(handler) -> dict:
    """Send SIGTERM and SIGINT (Ctrl-C) to ``handler``; returns the handlers to restore. Only the
    main thread can; a signal a parent process set to be ignored stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signals(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
