"""The four loss terms of the paper, as implemented in the authors' code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.augment import augment
from toolkit.errors import RecipeError
from toolkit.losses import LossTerm, StepOutputs
from toolkit.networks import with_fixed_weights


class Supervised(LossTerm):
    """L_sup: cross-entropy of each supervised categorical head on the rows with its label.

    Partial labels: each variable uses only its labeled rows (a batch without labels adds 0,
    computed without a host synchronisation).
    """

    def __call__(self, out: StepOutputs):
        return {"ge": self._cross_entropy(out.raw_real, out.labels)}

    def _cross_entropy(self, raw: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy of ``raw`` ``(B, dim)`` over each variable's labeled rows, summed over variables."""
        total = raw.new_zeros(())
        for v in self.spec.supervised:
            lab = labels[v.name]
            mask = (lab >= 0).float()
            ce = F.cross_entropy(raw[:, self.spec.slices[v.name]], lab.clamp(min=0), reduction="none")
            total = total + (ce * mask).sum() / mask.sum().clamp(min=1.0)
        return total


class AugmentedSupervised(Supervised):
    """L_sup with E reading the real batch through random transforms (``options.augment``; not in the paper).

    A hundred labeled digits, each seen hundreds of times in one shape, teach E that shape; drawn
    through ``affine`` and ``translation`` they stand for more of the handwriting around them
    (FixMatch's labeled batch is weakly augmented too). The term's own pass
    (:meth:`extra_passes`): E on the transformed real batch, ``(B, dim)`` raw codes; the
    cross-entropy is taken on the labeled rows only, as in :class:`Supervised`. Trains E only.
    """

    def extra_passes(self, nets, batch, step):
        return {"raw": nets.encoder(augment(batch["x_real"].detach(), self.options.augment)).float()}

    def __call__(self, out: StepOutputs):
        return {"ge": self._cross_entropy(out.extra[self.name]["raw"], out.labels)}


def supervised(spec, options):
    """The registry's factory for ``sup``: :class:`AugmentedSupervised` when ``options.augment``
    names transforms, else the paper's :class:`Supervised`."""
    return AugmentedSupervised(spec, options) if options.augment else Supervised(spec, options)


class Reconstruction(LossTerm):
    """L_rec: squared error between x and G(E(x)); mean over pixels (code) or sum (paper).

    With ``code: labels`` (not in the paper) the labeled rows are redrawn from E(x) with their
    supervised variables set to the label's one-hot (``StepOutputs.x_rec`` then comes from
    :meth:`toolkit.latent.LatentSpec.with_labels`; the forward pass makes it, ``needs``
    ``"labeled_reconstruction"``): E's mistakes on those rows no longer teach G which class an
    image belongs to. Unlabeled rows and ``u`` and the continuous parts are E's, as before.
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        labeled = options is not None and options.code == "labels" and bool(spec.supervised)
        self.needs = frozenset({"labeled_reconstruction"}) if labeled else frozenset()

    def __call__(self, out: StepOutputs):
        sq = (out.x_rec - out.x_real).square()
        if self.options.reduction == "mean":
            return {"ge": sq.mean()}
        return {"ge": sq.flatten(1).sum(1).mean()}


class Information(LossTerm):
    """-L_I: -log E(c | G(u, c)) on generated images; trains G and E.

    Categorical: cross-entropy with the sampled class. Continuous: Gaussian NLL with a fixed
    std (1 in the code), i.e. 0.5 * squared error / std^2 up to a constant. With
    ``translations: true`` (not in the paper) the same term is added for translations of the
    batch's real images, G(u of E(x), c from the prior), so that edits follow the code. With
    ``supervised_by: labels`` (not in the paper) the labeled variables are read by E with its
    weights held fixed: for them this term trains G only, and E learns them from labels alone.
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        needs = {"swap"} if options.translations else set()
        self.fixed = options.supervised_by == "labels" and bool(spec.supervised)
        if self.fixed:
            needs.add("fixed_encoder")
        self.needs = frozenset(needs)

    def __call__(self, out: StepOutputs):
        total = self._nll(out.raw_fake, out.z_fake, out.raw_fake_fixed if self.fixed else None)
        if self.options.translations:
            total = total + self._nll(out.raw_swap, out.z_fake, out.raw_swap_fixed if self.fixed else None)
        return {"ge": total}

    def _nll(self, raw: torch.Tensor, z: torch.Tensor, raw_fixed: torch.Tensor | None = None) -> torch.Tensor:
        """NLL of the codes ``z`` under ``raw``; labeled variables read from ``raw_fixed`` if given."""
        total = raw.new_zeros(())
        for v in self.spec.categorical:
            s = self.spec.slices[v.name]
            logits = raw_fixed if raw_fixed is not None and v.label is not None else raw
            total = total + F.cross_entropy(logits[:, s], z[:, s].argmax(1))
        cont = [self.spec.slices[v.name] for v in self.spec.continuous]
        if cont:
            target = torch.cat([z[:, s] for s in cont], dim=1)
            mean = torch.cat([raw[:, s] for s in cont], dim=1)
            total = total + 0.5 * ((target - mean) / self.options.continuous_std).square().sum(1).mean()
        return total


class AugmentedInformation(Information):
    """-L_I with E reading G's images through random transforms (``options.augment``; not in the paper).

    G and E can agree on a code that no classifier of real images sees: a pixel-level speckle
    that E learns to read (on CelebA the information loss falls near 0 while a judge finds the
    requested hair colour in under half the images). Transforms such as ``blur`` and ``noise``
    destroy such a code, so G must draw the class where it survives them. The term's own passes
    (:meth:`extra_passes`): E on the transformed generated batch, ``(B, dim)`` raw codes; with
    ``translations: true`` also G's translations of the real batch, made here; with
    ``supervised_by: labels`` the same views again through E with its weights held fixed. With
    ``augment_variables`` only those variables are read through the transforms, the others from
    the plain images (for translations and fixed weights one more E pass each).

    Raises:
        RecipeError: ``augment_variables`` names a variable the latent code does not have.
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        self.needs = frozenset()  # the translations and the fixed-weights views come from this term's own passes
        unknown = [n for n in options.augment_variables if n not in spec.names]
        if unknown:
            raise RecipeError(f"losses.info.options.augment_variables: unknown latent variable '{unknown[0]}' "
                              f"(the recipe's variables: {', '.join(spec.names)})")
        self.through = set(options.augment_variables) or set(spec.names)
        self.partial = self.through != set(spec.names)

    def extra_passes(self, nets, batch, step):
        images = {"fake": batch["x_fake"]}
        if self.options.translations:
            images["swap"] = nets.generator(nets.spec.with_variables_of(batch["z_real"], batch["z_fake"]))
        views = {}
        for key, x in images.items():
            seen = augment(x, self.options.augment, self.options.augment_strength)
            views[key] = nets.encoder(seen).float()
            if self.fixed:
                views[f"{key}_fixed"] = with_fixed_weights(nets.encoder, seen).float()
            if self.partial:  # the other variables: E on the plain images (E(G(z)) is the step's own pass)
                if key != "fake":
                    views[f"{key}_plain"] = nets.encoder(x).float()
                if self.fixed:
                    views[f"{key}_fixed_plain"] = with_fixed_weights(nets.encoder, x).float()
        return views

    def _read(self, views: dict, key: str, plain: torch.Tensor | None) -> torch.Tensor | None:
        """E's raw codes for this term: the transformed view for ``self.through``, ``plain`` for the rest."""
        seen = views.get(key)
        if seen is None or not self.partial:
            return seen
        mixed = plain.clone()
        for name in self.through:
            s = self.spec.slices[name]
            mixed[:, s] = seen[:, s]
        return mixed

    def __call__(self, out: StepOutputs):
        views = out.extra[self.name]
        total = self._nll(self._read(views, "fake", out.raw_fake), out.z_fake,
                          self._read(views, "fake_fixed", views.get("fake_fixed_plain")))
        if self.options.translations:
            total = total + self._nll(self._read(views, "swap", views.get("swap_plain")), out.z_fake,
                                      self._read(views, "swap_fixed", views.get("swap_fixed_plain")))
        return {"ge": total}


def information(spec, options):
    """The registry's factory for ``info``: :class:`AugmentedInformation` when ``options.augment``
    names transforms, else the paper's :class:`Information`.

    Raises:
        RecipeError: ``augment_variables`` without ``augment``.
    """
    if options.augment_variables and not options.augment:
        raise RecipeError("losses.info.options.augment_variables needs losses.info.options.augment: the transforms "
                          "to read those variables through (e.g. [translation, blur, noise])")
    return AugmentedInformation(spec, options) if options.augment else Information(spec, options)


class Adversarial(LossTerm):
    """L_adv with a joint D(x, z): encoder pairs are "real", generator pairs "fake".

    D minimises BCE. G/E (code): G pushes D(G(z), z) -> 1 and E pushes D(x, E(x)) -> 0
    (non-saturating, label-flipped); ``form: minimax`` uses the paper's -L_D instead; ``form:
    hinge`` the hinge loss (D: relu(1 - D_real) + relu(1 + D_fake); G/E: D_real - D_fake).
    """

    def __call__(self, out: StepOutputs):
        if self.options.form == "hinge":
            d_loss = F.relu(1 - out.d_real).mean() + F.relu(1 + out.d_fake).mean()
            return {"ge": out.d_real.mean() - out.d_fake.mean(), "d": d_loss}
        d_loss = F.softplus(-out.d_real).mean() + F.softplus(out.d_fake).mean()
        if self.options.form == "nonsaturating":
            ge_loss = F.softplus(-out.d_fake).mean() + F.softplus(out.d_real).mean()
        else:
            ge_loss = -d_loss
        return {"ge": ge_loss, "d": d_loss}
