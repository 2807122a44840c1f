"""Options of the paper's networks and losses (light: no torch import).

Where the authors' code differs from the paper's text, the default follows the code (the
paper's numbers came from it) and the text's version is an option.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit.recipe import Augmentation


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaperNetworkOptions(_Options):
    """Options shared by the paper's network families."""

    d_regularizer: Literal["noise", "dropout", "none"] = Field(
        "noise", description="code: Gaussian noise after each D layer; paper: dropout 0.3"
    )
    noise_std: tuple[float, float] = Field((0.3, 0.5), description="noise std on the first / later D layers")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout probability (d_regularizer=dropout)")
    init: Literal["code", "fixed", "he", "default"] = Field(
        "code",
        description="code: the authors' init (G N(0,0.02); E/D 'He' with their kernel-height fan-in); "
        "fixed: the code's G init, He init with the true fan-in for E/D; he: He init with the true "
        "fan-in everywhere; default: PyTorch's",
    )
    bn_momentum: float = Field(0.001, gt=0, le=1, description="BatchNorm momentum (TF decay 0.999 = 0.001)")
    bn_eps: float = Field(1e-3, gt=0, description="BatchNorm epsilon (TF default 1e-3)")
    width: float = Field(1.0, gt=0, le=4, description="channel multiplier (small values for smoke tests)")
    e_width: float | None = Field(
        None, gt=0, le=4, description="E's channel multiplier, when E should be wider or narrower than G and D "
        "(not in the paper); unset: width"
    )
    e_downsampling: Literal["stride", "maxpool"] = Field(
        "stride", description="how E halves its maps: stride = VALID stride-2 convolutions (paper, code); maxpool = "
        "SAME stride-1 convolutions, 2x2 max pooling before each one the paper strides (not in the paper): E keeps "
        "the strongest response of every position, a better classifier from few labels (docs/RESULTS.md)"
    )
    e_activation: Literal["elu", "relu"] = Field(
        "elu", description="E's nonlinearity: elu (paper, code) or relu (not in the paper; on CPU ELU's exponential "
        "costs more than the convolutions of a small E)"
    )
    d_spectral_norm: bool = Field(
        False, description="spectral normalisation of D's weights (torch's parametrization; Miyato et al. 2018; not in the paper)"
    )
    d_projection: bool = Field(
        False, description="D also scores each categorical variable's code against its image features, <W c, h(x)> "
        "(projection discriminator, Miyato & Koyama 2018; not in the paper): D judges whether an image fits its "
        "class directly; W starts small (N(0, 0.02^2))"
    )
    g_upsampling: Literal["deconv", "resize", "bilinear"] = Field(
        "deconv", description="how G doubles its resolution: deconv = 4x4 stride-2 transposed convolutions (paper, "
        "code); resize = nearest-neighbour x2 then a 3x3 convolution (no checkerboard, Odena et al. 2016); "
        "bilinear = bilinear x2 then a 3x3 convolution"
    )


class Paper28Options(PaperNetworkOptions):
    """paper28: the MNIST column of Table I."""


class Paper32Options(PaperNetworkOptions):
    """paper32: the SVHN / CelebA column of Table I (no code was published for it)."""

    d_regularizer: Literal["noise", "dropout", "none"] = Field(
        "noise", description="assumed as in the MNIST code: Gaussian noise after each D layer; paper: dropout 0.3"
    )


class SupOptions(_Options):
    augment: list[Augmentation] = Field(
        [], description="E reads the labeled real images for this term through these random transforms, per image, "
        "in order (e.g. [affine, translation]: FixMatch's labeled view is weakly augmented too; not in the paper): "
        "the few labeled images are seen in more shapes than they were drawn in. [] = off (the paper); with "
        "transforms one more E pass per batch"
    )


class RecOptions(_Options):
    reduction: Literal["mean", "sum"] = Field(
        "mean", description="mean over pixels (code) or sum over pixels, mean over batch (paper)"
    )
    code: Literal["encoder", "labels"] = Field(
        "encoder", description="the code G redraws a real image from: encoder = E(x) (paper); labels = E(x) with "
        "the labeled rows' supervised variables set to their label's one-hot, so G learns what each class looks "
        "like from labeled pixels, not from E's reading of them (not in the paper; no extra pass)"
    )


class InfoOptions(_Options):
    continuous_std: float = Field(1.0, gt=0, description="fixed std of the encoder's Gaussian (code: 1)")
    translations: bool = Field(
        False, description="also on translations G(u of E(x), c from the prior) of real images, so edits follow "
        "the code (not in the paper; one more G and E pass per step)"
    )
    supervised_by: Literal["labels_and_samples", "labels"] = Field(
        "labels_and_samples", description="what teaches E's heads of the labeled variables: labels_and_samples "
        "(paper): the labels and, through this term, G's samples; labels: the labels only (this term then trains "
        "G alone for those variables, through E with its weights held fixed, so G must change what a classifier "
        "of real images sees; not in the paper; one more E pass per generated batch)"
    )
    augment: list[Augmentation] = Field(
        [], description="E reads G's images for this term through these random transforms, per image, in order "
        "(e.g. [translation, blur, noise]; not in the paper): a code that G hides in pixel-level patterns no longer "
        "reaches E, so G must draw it where a classifier of real images sees it. [] = off (the paper); "
        "with options one more E pass per generated batch"
    )
    augment_strength: float = Field(1.0, gt=0, le=2, description="scales every augment operation's extent (1: "
                                    "DiffAugment's; blur: sigma up to 1 px, noise: std up to 0.05)")
    augment_variables: list[str] = Field(
        [], description="the latent variables E reads through augment (e.g. [hair, pale]: attributes of colour "
        "and shape that survive a blur; a smile at 32x32 does not); the others are read from the plain images. "
        "[] = every variable"
    )


class AdvOptions(_Options):
    form: Literal["nonsaturating", "minimax", "hinge"] = Field(
        "nonsaturating", description="code: non-saturating, label-flipped G/E loss; paper: minimax; hinge (not in "
        "the paper; Lim & Ye 2017, Miyato et al. 2018): D minimises relu(1 - D(real pair)) + relu(1 + D(fake pair)), "
        "G/E minimise D(real pair) - D(fake pair)"
    )


class ConsistencyOptions(_Options):
    threshold: float = Field(0.95, ge=0, le=1, description="least confidence of E on the weak view for a pseudo-label (FixMatch: 0.95)")
    weak: list[Augmentation] = Field(["translation"], description="the weak view's augmentation, per image, in order")
    strong: list[Augmentation] = Field(
        ["translation", "cutout", "brightness", "contrast"], description="the strong view's augmentation, per image, in order"
    )
    strong_strength: float = Field(1.0, ge=0, le=2, description="scales every strong operation's extent (1: DiffAugment's)")
    unlabeled_ratio: int = Field(
        0, ge=0, le=16, description="FixMatch's mu: mu * batch_size more real images per step, drawn uniformly from the "
        "training set, join the step's batch for this term (FixMatch: 7); 0: the step's batch only"
    )
    teacher: Literal["encoder", "averaged"] = Field(
        "encoder", description="who gives the pseudo-labels on the weak view: encoder (FixMatch: E itself) or averaged "
        "(E with train.ema's moving average of its weights, as Mean Teacher's teacher; needs train.ema; no extra pass)"
    )
    weighting: Literal["threshold", "soft"] = Field(
        "threshold", description="how much each pseudo-label counts: threshold (FixMatch: 1 at confidence >= threshold, "
        "else 0) or soft (SoftMatch, Chen et al. 2023: 1 at or above the running mean confidence, below it a Gaussian "
        "of the distance with the running variance / 4, so unsure images still teach a little; threshold unused)"
    )
    alignment: Literal["none", "prior"] = Field(
        "none", description="distribution alignment of the weak view's class probabilities before the pseudo-label "
        "(ReMixMatch, SoftMatch's uniform alignment): none, or prior (times the variable's prior / E's running mean "
        "prediction, renormalised), so E does not lean to the classes it already reads most"
    )
    momentum: float = Field(
        0.999, gt=0, lt=1, description="momentum of the running statistics of weighting: soft and alignment: prior "
        "(SoftMatch: 0.999); saved for --resume"
    )


class VirtualAdversarialOptions(_Options):
    epsilon: float = Field(2.0, gt=0, description="L2 norm of the adversarial perturbation, in pixel units over the whole "
                           "image (values in [0, 1]; VAT's MNIST setting: 0.3 for its MLP, larger for convolutional nets)")
    xi: float = Field(1e-6, gt=0, description="size of the probe in the power iteration (VAT: 1e-6)")
    unlabeled_ratio: int = Field(
        0, ge=0, le=16, description="mu * batch_size more real images per step, drawn uniformly from the training set, "
        "join the step's batch for this term; 0: the step's batch only"
    )


class GradientPenaltyOptions(_Options):
    gamma: float = Field(1.0, gt=0, description="penalty weight gamma (the term is gamma/2 * E||grad||^2)")
    every: int = Field(4, ge=1, description="lazy regularisation: compute every k steps, scaled by k (StyleGAN2: 16)")
    target: Literal["real", "fake"] = Field("real", description="real: R1 on encoder pairs (x, E(x)); fake: R2 on generator pairs")
    wrt_code: bool = Field(True, description="also penalise the gradient with respect to D's code input")


class ModeSeekingOptions(_Options):
    eps: float = Field(1e-5, gt=0, description="added to the ratio before it is inverted (MSGAN's code: 1e-5)")


class Cnn28Options(_Options):
    width: float = Field(1.0, gt=0, le=4, description="channel multiplier (small values for smoke tests)")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout before each fully connected layer")
