"""Built-in plugin: the networks and loss terms of Hinz & Wermter (2018), and a reference classifier.

Registered lazily: torch-heavy modules are imported when a thing is built.
"""

from toolkit.hookspecs import hookimpl

from .options import (
    AdvOptions,
    Cnn28Options,
    ConsistencyOptions,
    GradientPenaltyOptions,
    InfoOptions,
    ModeSeekingOptions,
    Paper28Options,
    Paper32Options,
    RecOptions,
    SupOptions,
    VirtualAdversarialOptions,
)


@hookimpl
def register_networks(register):
    register(
        "paper28",
        "toolkit_paper.networks28:build",
        options=Paper28Options,
        description="Table I, MNIST column: 28x28 G, E and D (the authors' code by default)",
    )
    register(
        "paper32",
        "toolkit_paper.networks32:build",
        options=Paper32Options,
        description="Table I, SVHN/CelebA column: 32x32 G, E and D, any channel count (MNIST code's choices)",
        image_shape=(3, 32, 32),
    )


@hookimpl
def register_losses(register):
    register("sup", "toolkit_paper.losses:supervised", options=SupOptions,
             description="cross-entropy of E's categorical heads on labeled images (L_sup)")
    register("rec", "toolkit_paper.losses:Reconstruction", options=RecOptions,
             description="||x - G(E(x))||^2 on real images (L_rec)")
    register("info", "toolkit_paper.losses:information", options=InfoOptions,
             description="-log E(c | G(u, c)) on generated images, trains G and E (L_I)")
    register("adv", "toolkit_paper.losses:Adversarial", options=AdvOptions,
             description="BiGAN-style joint discriminator D(x, z) (L_adv)")
    register("consistency", "toolkit_paper.additions:Consistency", options=ConsistencyOptions,
             description="FixMatch consistency of E's labeled heads on unlabeled real images (not in the paper)")
    register("vat", "toolkit_paper.additions:VirtualAdversarial", options=VirtualAdversarialOptions,
             description="virtual adversarial training of E's labeled heads on real images (not in the paper)")
    register("r1", "toolkit_paper.additions:GradientPenalty", options=GradientPenaltyOptions,
             description="lazy R1 (or R2) gradient penalty on D's pairs (not in the paper)")
    register("mode_seeking", "toolkit_paper.additions:ModeSeeking", options=ModeSeekingOptions,
             description="MSGAN's diversity term: G's images must differ when only u differs (not in the paper)")


@hookimpl
def register_classifiers(register):
    register("cnn28", "toolkit_paper.classifier:build", options=Cnn28Options,
             description="compact CNN for 28x28 images (conv32x2, conv64x2, FC 256): judges generated images")
