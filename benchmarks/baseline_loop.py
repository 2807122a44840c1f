"""The baseline: a minimal hand-written PyTorch loop of the same networks and losses.

This is "what a user would write" without the toolkit: G, E and D come from the same
registry factories (so the layers, widths and initialisation are identical), the data are
random uint8 images held on the device, and the four loss terms of the paper are written
inline. The step is the textbook one:

1. D update: D on ``(x, E(x).detach())`` and ``(G(z).detach(), z)``, BCE with logits,
   ``d_loss.backward()``, ``opt_d.step()``;
2. G/E update: D again on the non-detached pairs (with the just-updated D), the supervised,
   reconstruction, information and adversarial terms, ``ge_loss.backward()``, ``opt_ge.step()``;
3. every loss is logged with ``.item()`` (one host synchronisation per value, every step).

The toolkit instead runs each network once per step and takes both updates from one graph
with ``backward(inputs=...)``, and reads losses back every ``log_every`` steps.

Only the throughput of this loop matters here; it is not meant to train a good model (the
learning-rate schedule and the paper's labeled-sampling ramp are left out, as a quick
script would).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from toolkit.latent import LatentSpec, Variable
from toolkit.plugins import registry

# the latent layouts of the benchmark: like the MNIST recipe (paper28) and the SVHN / CelebA
# setups (paper32). The first categorical variable is supervised by the dataset's labels.
FAMILIES = {
    "paper28": {"shape": (1, 28, 28), "u": 16, "categorical": [10], "continuous": 2},
    "paper32": {"shape": (3, 32, 32), "u": 128, "categorical": [10, 5, 5, 5], "continuous": 4},
}
# loss weights and ramps as in recipes/mnist.yaml; Adam settings as in the recipes
WEIGHTS = {"sup": 10.0, "rec": 1.0, "info": 1.0, "adv": 1.0}
RAMP = 1000  # info and adv rise linearly over this many steps
LR_D, LR_GE, BETAS = 1e-4, 5e-4, (0.5, 0.999)
LABELED = 100  # labeled images, as in recipes/mnist.yaml


def variable_names(family: str) -> tuple[list[str], list[str]]:
    """Names of the categorical and continuous variables of ``family``'s latent layout."""
    layout = FAMILIES[family]
    categorical = ["class"] + [f"cat{i}" for i in range(1, len(layout["categorical"]))]
    continuous = [f"c{i}" for i in range(1, layout["continuous"] + 1)]
    return categorical, continuous


def latent_spec(family: str, label: str = "class") -> LatentSpec:
    """The latent spec the network factories are built for (they need its sizes only)."""
    layout = FAMILIES[family]
    categorical, continuous = variable_names(family)
    variables = [
        Variable(name, "categorical", classes=[str(k) for k in range(size)], label=label if i == 0 else None)
        for i, (name, size) in enumerate(zip(categorical, layout["categorical"]))
    ]
    variables += [Variable(name, "continuous") for name in continuous]
    return LatentSpec(layout["u"], variables)


class BaselineLoop:
    """G/E/D, two Adam optimisers and ``images`` random uint8 images on ``device``."""

    def __init__(self, family: str, batch_size: int = 64, images: int = 2048, width: float = 1.0,
                 device: str | torch.device = "cpu", labeled: int = LABELED, seed: int = 0):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.batch_size = batch_size
        layout = FAMILIES[family]
        self.spec = spec = latent_spec(family)
        nets = registry("network").get(family).build(spec, layout["shape"], options={"width": width})
        self.G = nets.generator.to(self.device)
        self.E = nets.encoder.to(self.device)
        self.D = nets.discriminator.to(self.device)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=LR_D, betas=BETAS)
        self.opt_ge = torch.optim.Adam(itertools.chain(self.G.parameters(), self.E.parameters()), lr=LR_GE, betas=BETAS)

        # the data: random images and labels, with only the first ``labeled`` images labeled
        self.images = torch.randint(0, 256, (images, *layout["shape"]), dtype=torch.uint8, device=self.device)
        labels = torch.full((images,), -1, dtype=torch.long)
        labels[:labeled] = torch.randint(layout["categorical"][0], (min(labeled, images),))
        self.labels = labels.to(self.device)

        # the layout of Z = [u | categoricals | continuous]
        self.u_size = layout["u"]
        self.cat_slices, start = [], self.u_size
        for size in layout["categorical"]:
            self.cat_slices.append(slice(start, start + size))
            start += size
        self.cont_slice = slice(start, start + layout["continuous"])
        self.dim = start + layout["continuous"]
        assert self.dim == spec.dim

    def parameter_count(self) -> int:
        return sum(p.numel() for m in (self.G, self.E, self.D) for p in m.parameters())

    def sample_z(self, n: int) -> torch.Tensor:
        dev = self.device
        parts = [torch.rand(n, self.u_size, device=dev) * 2 - 1]
        for s in self.cat_slices:
            size = s.stop - s.start
            parts.append(F.one_hot(torch.randint(size, (n,), device=dev), size).float())
        parts.append(torch.rand(n, self.cont_slice.stop - self.cont_slice.start, device=dev) * 2 - 1)
        return torch.cat(parts, dim=1)

    def code(self, raw: torch.Tensor) -> torch.Tensor:
        """Encoder output -> code: softmax over each categorical variable's logits."""
        parts = [raw[:, : self.u_size]]
        parts += [torch.softmax(raw[:, s], dim=1) for s in self.cat_slices]
        parts.append(raw[:, self.cont_slice])
        return torch.cat(parts, dim=1)

    def step(self, step: int) -> dict[str, float]:
        """One D update, then one G/E update (1-based ``step``); returns the logged losses."""
        G, E, D = self.G, self.E, self.D
        b = self.batch_size
        index = torch.randint(len(self.images), (b,), device=self.device)
        x = self.images[index].float() / 255.0
        y = self.labels[index]
        z_fake = self.sample_z(b)
        ones = torch.ones(b, 1, device=self.device)
        zeros = torch.zeros(b, 1, device=self.device)

        # -- D update, on detached inputs
        x_fake = G(z_fake)
        raw_real = E(x)
        z_real = self.code(raw_real)
        d_real = D(x, z_real.detach())
        d_fake = D(x_fake.detach(), z_fake)
        d_loss = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()

        # -- G/E update
        x_rec = G(z_real)
        raw_fake = E(x_fake)
        d_real = D(x, z_real)
        d_fake = D(x_fake, z_fake)
        labeled = y >= 0
        if labeled.any():
            sup = F.cross_entropy(raw_real[labeled][:, self.cat_slices[0]], y[labeled])
        else:
            sup = torch.zeros((), device=self.device)
        rec = F.mse_loss(x_rec, x)
        info = sum(F.cross_entropy(raw_fake[:, s], z_fake[:, s].argmax(1)) for s in self.cat_slices)
        info = info + 0.5 * (raw_fake[:, self.cont_slice] - z_fake[:, self.cont_slice]).square().sum(1).mean()
        # non-saturating, label-flipped: G wants D(G(z), z) -> 1, E wants D(x, E(x)) -> 0
        adv = F.binary_cross_entropy_with_logits(d_fake, ones) + F.binary_cross_entropy_with_logits(d_real, zeros)
        ramp = min(1.0, step / RAMP)
        w = WEIGHTS
        ge_loss = w["sup"] * sup + w["rec"] * rec + ramp * (w["info"] * info + w["adv"] * adv)
        self.opt_ge.zero_grad()
        ge_loss.backward()
        self.opt_ge.step()

        return {"d": d_loss.item(), "sup": sup.item(), "rec": rec.item(), "info": info.item(), "adv": adv.item()}
