"""Loss terms from the literature since the paper, as options (none is in the paper or its code).

- ``consistency``: FixMatch (Sohn et al. 2020) for E's supervised heads on real images: a
  pseudo-label from a weakly augmented view, where E is confident, teaches E on a strongly
  augmented view of the same image.
- ``vat``: virtual adversarial training (Miyato et al. 2018) for E's supervised heads on real
  images: E's class probabilities must not change under the small perturbation of the image that
  changes them most, so every image teaches E, the unsure ones included.
- ``r1``: the R1 gradient penalty (Mescheder et al. 2018) on D's real (encoder) pairs, lazily
  every k steps as in StyleGAN2; ``target: fake`` gives R2 (the generator pairs).
- ``mode_seeking``: MSGAN's diversity term (Mao et al. 2019): two images of the same variables
  and different u must differ in proportion to their u's, so G does not draw one image per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.augment import augment
from toolkit.errors import RecipeError
from toolkit.losses import LossTerm, StepOutputs


class Consistency(LossTerm):
    """FixMatch on E's heads of the labeled variables, on every real image of the batch.

    For each supervised categorical variable: ``p = softmax(E(weak(x)))`` without gradients;
    rows with ``max p >= threshold`` get the pseudo-label ``argmax p``; the term is the
    cross-entropy of ``E(strong(x))`` with it, averaged over the whole batch (FixMatch's
    unlabeled loss; rows below the threshold add 0). With ``teacher: averaged`` the weak view
    is read by E with ``train.ema``'s averaged weights (Mean Teacher, Tarvainen & Valpola 2017).
    With ``unlabeled_ratio`` mu > 0 the term reads mu * B more real images as well (FixMatch's
    unlabeled batch of mu * B; the trainer draws them), so E's two passes see (1 + mu) * B images.

    ``weighting: soft`` (SoftMatch, Chen et al. 2023, eq. 7) weights each row by
    ``exp(-(min(max p - mu, 0))^2 / (2 * var / 4))`` instead of the threshold's 0 or 1, where mu
    and var are running means (momentum ``momentum``, from 1/K and 1) of the batch's mean and
    variance of ``max p``: confident rows count fully, unsure ones a little rather than not at
    all. ``alignment: prior`` multiplies ``p`` by the variable's prior over E's running mean
    prediction and renormalises first (distribution alignment, ReMixMatch; SoftMatch's uniform
    alignment for a uniform prior). The running statistics are the term's state
    (:meth:`state_dict`), saved in the resume file.

    Trains E only. One E pass without gradients and one with, per step. Images are in [0, 1];
    the views come from :func:`toolkit.augment.augment` with the options' policies.
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        self.needs = frozenset({"averaged_encoder"}) if options.teacher == "averaged" else frozenset()
        self.unlabeled_ratio = options.unlabeled_ratio
        self.stats: dict[str, torch.Tensor] = {}  # running statistics, by "<variable>.<name>"
        self.priors: dict[str, torch.Tensor] = {}  # alignment targets, fixed
        for v in spec.supervised:
            k = len(v.classes)
            if options.weighting == "soft":
                self.stats[f"{v.name}.confidence_mean"] = torch.tensor(1.0 / k)
                self.stats[f"{v.name}.confidence_var"] = torch.tensor(1.0)
            if options.alignment == "prior":
                prior = torch.tensor(v.weights) if v.weights is not None else torch.full((k,), 1.0 / k)
                self.priors[v.name] = prior / prior.sum()
                self.stats[f"{v.name}.mean_prediction"] = self.priors[v.name].clone()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.stats)

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        for k, t in tensors.items():
            if k in self.stats:
                self.stats[k] = t.to(self.stats[k].dtype)

    def extra_passes(self, nets, batch, step):
        x = batch["x_real"].detach()
        if self.unlabeled_ratio:
            x = torch.cat([x, batch["x_unlabeled"]])
        teacher = nets.averaged_encoder if self.options.teacher == "averaged" else nets.encoder
        with torch.no_grad():
            weak = teacher(augment(x, self.options.weak)).float()
        strong = nets.encoder(augment(x, self.options.strong, self.options.strong_strength))
        return {"weak": weak, "strong": strong}

    @torch.no_grad()
    def _running(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """Update the running mean ``key`` with this batch's ``value``; return the new mean."""
        old = self.stats[key].to(value.device)
        self.stats[key] = torch.lerp(old, value, 1.0 - self.options.momentum)
        return self.stats[key]

    @torch.no_grad()
    def pseudo_labels(self, name: str, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo-labels ``(B,)`` and their weights ``(B,)`` in [0, 1] from the weak view's logits
        ``(B, K)`` of variable ``name``, updating the running statistics the options use."""
        probs = logits.softmax(1)
        if self.options.alignment == "prior":
            mean = self._running(f"{name}.mean_prediction", probs.mean(0))
            probs = probs * self.priors[name].to(probs.device) / mean.clamp(min=1e-6)
            probs = probs / probs.sum(1, keepdim=True)
        confidence, pseudo = probs.max(1)
        if self.options.weighting == "soft":
            mu = self._running(f"{name}.confidence_mean", confidence.mean())
            var = self._running(f"{name}.confidence_var", confidence.var(unbiased=len(confidence) > 1))
            weight = torch.exp(-(confidence - mu).clamp(max=0).square() / (2 * var.clamp(min=1e-8) / 4))
        else:
            weight = (confidence >= self.options.threshold).float()
        return pseudo, weight

    def __call__(self, out: StepOutputs):
        views = out.extra[self.name]
        total = views["strong"].new_zeros(())
        for v in self.spec.supervised:
            s = self.spec.slices[v.name]
            pseudo, weight = self.pseudo_labels(v.name, views["weak"][:, s])
            ce = F.cross_entropy(views["strong"][:, s].float(), pseudo, reduction="none")
            total = total + (ce * weight).mean()
        return {"ge": total}


def _unit(d: torch.Tensor) -> torch.Tensor:
    """``d`` scaled to unit L2 norm per row (over every dimension but the first)."""
    return d / d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (d.dim() - 1))


class VirtualAdversarial(LossTerm):
    """Virtual adversarial training (Miyato et al. 2018, TPAMI, eqs. 7-13) for E's supervised heads.

    For each real image ``x`` (``(B, C, H, W)``, values in [0, 1]; the step's batch, and with
    ``unlabeled_ratio`` mu > 0 mu * B more): ``p = softmax(E(x))`` per supervised categorical
    variable, without gradients; one power iteration finds the direction ``r`` of L2 norm
    ``epsilon`` (pixel units over the whole image) that changes E's prediction most,
    ``r = epsilon * unit(grad_d KL(p || softmax(E(x + xi * d))))`` from a random unit ``d``;
    the term is ``KL(p || softmax(E(x + r)))``, summed over the variables and averaged over the
    rows (the local distributional smoothness, eq. 13). Unlike FixMatch's threshold, every image
    counts, so E learns to be smooth around the images it is unsure of as well.

    Trains E only. ``p`` of the step's batch is the step's own ``E(x)`` (``batch["raw_real"]``,
    detached); two E passes more per step: one whose gradient is taken with respect to the
    perturbation only, one that trains E (and one without gradients on the mu * B more images). ``xi``, ``epsilon``: the options
    (the authors' MNIST setting: ``xi`` 1e-6, ``epsilon`` 0.3-5 depending on the network).
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        self.unlabeled_ratio = options.unlabeled_ratio
        if not spec.supervised:
            raise RecipeError("losses.vat smooths E's labeled variables, but the recipe has none: "
                              "give a categorical variable a label or drop the term")

    def _divergence(self, clean: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``KL(softmax(clean) || softmax(logits))`` per row ``(B,)``, summed over the supervised heads."""
        total = logits.new_zeros(len(logits))
        for v in self.spec.supervised:
            s = self.spec.slices[v.name]
            p_log = clean[:, s].float().log_softmax(1)
            q_log = logits[:, s].float().log_softmax(1)
            total = total + (p_log.exp() * (p_log - q_log)).sum(1)
        return total

    def extra_passes(self, nets, batch, step):
        x = batch["x_real"].detach()
        clean = batch["raw_real"].detach().float()  # the step's own E(x): no pass of the term's
        if self.unlabeled_ratio:
            x = torch.cat([x, batch["x_unlabeled"]])
            with torch.no_grad():
                clean = torch.cat([clean, nets.encoder(batch["x_unlabeled"]).float()])
        d = (self.options.xi * _unit(torch.randn_like(x))).requires_grad_(True)
        with torch.enable_grad():
            distance = self._divergence(clean, nets.encoder(x + d)).sum()
            (grad,) = torch.autograd.grad(distance, [d])
        r = self.options.epsilon * _unit(grad.detach())
        return {"clean": clean, "perturbed": nets.encoder(x + r)}

    def __call__(self, out: StepOutputs):
        views = out.extra[self.name]
        return {"ge": self._divergence(views["clean"], views["perturbed"]).mean()}


class GradientPenalty(LossTerm):
    """R1 (``target: real``) or R2 (``target: fake``): ``gamma / 2 * E[||grad D(x, z)||^2]``.

    The gradient is taken with respect to D's image input and, with ``wrt_code``, its code
    input too (the joint D judges pairs). Lazy regularisation: computed on step 1 and every
    ``every`` steps after, and scaled by ``every`` (StyleGAN2), so its mean effect is unchanged. Trains D only;
    returns ``{"d": 0}`` on the steps it skips.
    """

    def extra_passes(self, nets, batch, step):
        if (step - 1) % self.options.every:  # steps 1, 1 + k, 1 + 2k, ...
            return {}
        x_key, z_key = ("x_real", "z_real_d") if self.options.target == "real" else ("x_fake", "z_fake")
        x = batch[x_key].detach().requires_grad_(True)
        z = batch[z_key].detach().requires_grad_(self.options.wrt_code)
        logits = nets.discriminator(x, z).float()
        inputs = [x, z] if self.options.wrt_code else [x]
        grads = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
        penalty = sum(g.float().square().flatten(1).sum(1) for g in grads).mean()
        return {"penalty": penalty}

    def __call__(self, out: StepOutputs):
        penalty = out.extra.get(self.name, {}).get("penalty")
        if penalty is None:
            return {"d": out.d_real.new_zeros(())}
        return {"d": 0.5 * self.options.gamma * self.options.every * penalty}


class ModeSeeking(LossTerm):
    """MSGAN's mode-seeking term (Mao et al. 2019, eq. 3; their code's form).

    G draws each generated row a second time with the same variables (classes, continuous
    codes) and a new u from the prior; the term is ``1 / (mean|G(z2) - G(z1)| / mean|u2 - u1|
    + eps)``, means over the batch and all pixels (and u's dimensions), so it falls as G makes the
    two images differ more per unit of u. Trains G only (E and D do not see the second images).
    One more G pass per step, on ``B`` codes; u is drawn from the global random generator (saved
    for ``--resume`` with the rest of the run's state).
    """

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        if not spec.u_size:
            raise RecipeError("losses.mode_seeking varies u, but latent.u.size is 0: give u a size or drop the term")

    def extra_passes(self, nets, batch, step):
        z1 = batch["z_fake"]
        u = nets.spec.slices["u"]
        z2 = z1.clone()
        z2[:, u] = nets.spec.sample(len(z1), device=z1.device)[:, u]
        x2 = nets.generator(z2)
        return {"image_distance": (x2 - batch["x_fake"]).abs().mean(),
                "code_distance": (z2[:, u] - z1[:, u]).abs().mean()}

    def __call__(self, out: StepOutputs):
        views = out.extra[self.name]
        ratio = views["image_distance"].float() / views["code_distance"].float()
        return {"ge": 1.0 / (ratio + self.options.eps)}
