"""Every registered network family and loss term, on tiny inputs."""

import pytest
import torch
import torch.nn.functional as F

from toolkit.errors import ToolkitError
from toolkit.latent import LatentSpec, Variable
from toolkit.losses import LossTerm, StepOutputs, build_losses, has_extra_passes, ramp_factor
from toolkit.networks import Networks, build_networks, with_fixed_weights
from toolkit.plugins import registry
from toolkit.testing import smoke_test_loss

B = 4


def _spec() -> LatentSpec:
    return LatentSpec(
        3,
        [
            Variable("digit", "categorical", classes=[str(i) for i in range(4)], label="digit"),
            Variable("c1", "continuous"),
            Variable("style", "categorical", classes=["a", "b"]),
        ],
    )


def _small(entry, **options) -> dict:
    if entry.options is not None and "width" in entry.options.model_fields:
        options.setdefault("width", 0.125)
    return options


NETWORKS = registry("network").entries()
LOSSES = registry("loss").entries()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _size(entry) -> int:
    """The image size a family declares (``register(..., image_shape=...)``), else 28."""
    return tuple(entry.extra.get("image_shape", (1, 28, 28)))[-1]


# -- networks ------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", NETWORKS, ids=lambda e: e.name)
@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes_and_ranges(entry, channels):
    spec, s = _spec(), _size(entry)
    nets = entry.build(spec, (channels, s, s), options=_small(entry))
    assert isinstance(nets, Networks)
    assert nets.ge_parameters() and nets.d_parameters()
    z = spec.sample(B)
    x = nets.generator(z)
    assert x.shape == (B, channels, s, s)
    assert x.min() >= 0 and x.max() <= 1
    raw = nets.encoder(torch.rand(B, channels, s, s))
    assert raw.shape == (B, spec.dim)
    u = raw[:, spec.slices["u"]]
    assert u.min() >= -1 and u.max() <= 1
    d = nets.discriminator(x, z)
    assert d.shape == (B, 1) and torch.isfinite(d).all()
    # one backward pass reaches every parameter group
    (x.mean() + raw.mean() + d.mean()).backward()
    assert all(p.grad is not None for p in nets.parameters())


@pytest.mark.parametrize("entry", NETWORKS, ids=lambda e: e.name)
def test_network_builds_through_build_networks(entry):
    nets = build_networks(entry.name, _spec(), [1, _size(entry), _size(entry)], _small(entry))
    assert isinstance(nets, Networks)


def test_paper28_discriminator_noise():
    spec = _spec()
    nets = build_networks("paper28", spec, (1, 28, 28), {"width": 0.125, "d_regularizer": "noise"})
    x, z = torch.rand(B, 1, 28, 28), spec.sample(B)
    d = nets.discriminator
    d.train()
    with torch.no_grad():
        assert not torch.equal(d(x, z), d(x, z))
    d.eval()
    with torch.no_grad():
        assert torch.equal(d(x, z), d(x, z))


@pytest.mark.parametrize("regularizer", ["dropout", "none"])
def test_paper28_other_regularisers(regularizer):
    spec = _spec()
    nets = build_networks("paper28", spec, (1, 28, 28), {"width": 0.125, "d_regularizer": regularizer})
    kinds = {type(m).__name__ for m in nets.discriminator.modules()}
    assert "GaussianNoise" not in kinds
    assert ("Dropout" in kinds) == (regularizer == "dropout")
    x, z = torch.rand(B, 1, 28, 28), spec.sample(B)
    with torch.no_grad():
        nets.discriminator.train()
        a, b = nets.discriminator(x, z), nets.discriminator(x, z)
        assert a.shape == (B, 1)
        assert torch.equal(a, b) == (regularizer == "none")
        nets.discriminator.eval()
        assert torch.equal(nets.discriminator(x, z), nets.discriminator(x, z))


@pytest.mark.parametrize("init", ["code", "fixed", "he", "default"])
def test_paper28_inits(init):
    spec = _spec()
    nets = build_networks("paper28", spec, (1, 28, 28), {"width": 0.125, "init": init})
    with torch.no_grad():
        assert torch.isfinite(nets.generator(spec.sample(2))).all()


def test_fixed_init_keeps_the_codes_generator_and_uses_the_true_fan_in_for_e_and_d():
    torch.manual_seed(0)
    code = build_networks("paper28", _spec(), (1, 28, 28), {"init": "code"})
    torch.manual_seed(0)
    fixed = build_networks("paper28", _spec(), (1, 28, 28), {"init": "fixed"})
    for a, b in zip(code.generator.parameters(), fixed.generator.parameters()):
        assert torch.equal(a, b)
    conv = fixed.discriminator.image[1][0]  # 64 -> 128, 3x3: He std sqrt(2 / (64 * 9))
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert code.discriminator.image[1][0].weight.std().item() == pytest.approx((2 / 3) ** 0.5, rel=0.05)


@pytest.mark.parametrize("upsampling,mode", [("resize", "nearest"), ("bilinear", "bilinear")])
@pytest.mark.parametrize("family,shape", [("paper28", (1, 28, 28)), ("paper32", (3, 32, 32))])
def test_resize_upsampling_has_no_transposed_stride_two_convolutions(family, shape, upsampling, mode):
    spec = _spec()
    nets = build_networks(family, spec, shape, {"width": 0.125, "g_upsampling": upsampling})
    strided = [m for m in nets.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d) and m.stride != (1, 1)]
    assert not strided
    resizes = [m for m in nets.generator.modules() if isinstance(m, torch.nn.Upsample)]
    assert resizes and all(m.mode == mode for m in resizes)
    with torch.no_grad():
        x = nets.generator(spec.sample(3))
    assert x.shape == (3, *shape) and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("family,shape", [("paper28", (1, 28, 28)), ("paper32", (3, 32, 32))])
def test_e_width_widens_only_the_encoder(family, shape):
    spec = _spec()
    same = build_networks(family, spec, shape, {"width": 0.25})
    wide = build_networks(family, spec, shape, {"width": 0.25, "e_width": 1})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide.encoder) > 4 * count(same.encoder)
    assert count(wide.generator) == count(same.generator) and count(wide.discriminator) == count(same.discriminator)
    convs = [m for m in wide.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 32  # Table I's first E convolution at width 1
    with torch.no_grad():
        code = wide.encoder(torch.rand(3, *shape))
    assert code.shape == (3, spec.dim)
    with pytest.raises(ToolkitError, match=r"model\.options\.e_width"):
        build_networks(family, spec, shape, {"width": 0.25, "e_width": 0})


@pytest.mark.parametrize("family,shape,side", [("paper28", (1, 28, 28), 7), ("paper32", (3, 32, 32), 4)])
def test_max_pooling_encoder_halves_its_maps_by_pooling_and_keeps_g_and_d(family, shape, side):
    spec = _spec()
    paper = build_networks(family, spec, shape, {"width": 0.25})
    pooled = build_networks(family, spec, shape, {"width": 0.25, "e_downsampling": "maxpool", "e_activation": "relu"})
    convs = [m for m in pooled.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in pooled.encoder.modules() if isinstance(m, torch.nn.MaxPool2d)]
    paper_convs = [m for m in paper.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(paper_convs) and all(c.stride == (1, 1) for c in convs)
    assert len(pools) == sum(c.stride == (2, 2) for c in paper_convs)  # one pool where the paper strides
    dense = [m for m in pooled.encoder.modules() if isinstance(m, torch.nn.Linear)][0]
    assert dense.in_features == side * side * convs[-1].out_channels
    activations = {type(m) for m in pooled.encoder.modules() if isinstance(m, (torch.nn.ELU, torch.nn.ReLU))}
    assert activations == {torch.nn.ReLU}
    assert any(isinstance(m, torch.nn.ELU) for m in pooled.discriminator.modules())
    assert any(isinstance(m, torch.nn.ELU) for m in pooled.generator.modules())
    with torch.no_grad():
        code = pooled.encoder(torch.rand(3, *shape))
    assert code.shape == (3, spec.dim) and torch.isfinite(code).all()
    with pytest.raises(ToolkitError, match=r"model\.options\.e_downsampling"):
        build_networks(family, spec, shape, {"width": 0.25, "e_downsampling": "avgpool"})


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 28, 32), (1, 64, 64)])
def test_paper28_refuses_other_sizes(shape):
    with pytest.raises(ToolkitError, match=r"paper28.*28x28"):
        build_networks("paper28", _spec(), shape, {"width": 0.125})


def test_paper28_bad_option():
    with pytest.raises(ToolkitError, match=r"model\.options\.widht: unknown key"):
        build_networks("paper28", _spec(), (1, 28, 28), {"widht": 0.125})
    with pytest.raises(ToolkitError, match=r"model\.options\.width"):
        build_networks("paper28", _spec(), (1, 28, 28), {"width": 0})


# -- losses --------------------------------------------------------------------------------
def _outputs(spec, labels=None, b=B) -> StepOutputs:
    z_fake = spec.sample(b)
    raw_real = torch.randn(b, spec.dim)
    if labels is None:
        labels = torch.tensor([0, -1, 2, -1][:b])
    return StepOutputs(
        x_real=torch.rand(b, 1, 28, 28),
        labels={"digit": labels},
        raw_real=raw_real,
        z_real=spec.code(raw_real),
        x_rec=torch.rand(b, 1, 28, 28),
        z_fake=z_fake,
        x_fake=torch.rand(b, 1, 28, 28),
        raw_fake=torch.randn(b, spec.dim),
        d_real=torch.randn(b, 1),
        d_fake=torch.randn(b, 1),
    )


@pytest.mark.parametrize("entry", LOSSES, ids=lambda e: e.name)
def test_every_loss_gives_finite_scalars(entry):
    spec = _spec()
    term = entry.build(spec, options={})
    assert isinstance(term, LossTerm)
    if has_extra_passes(term):  # it needs the step's networks: fed by the trainer's own forward passes
        result = smoke_test_loss(entry.name)
    else:
        result = term(_outputs(spec))
    assert result and set(result) <= {"ge", "d"}
    for value in result.values():
        assert value.dim() == 0 and torch.isfinite(value)


def test_build_losses_from_recipe():
    from toolkit.recipe import load_recipe

    recipe = load_recipe("recipes/quickstart.yaml")
    terms = build_losses(recipe.losses, _spec())
    assert list(terms) == ["sup", "rec", "info", "adv", "consistency"]


def test_sup_ignores_unlabeled_rows():
    spec = _spec()
    term = registry("loss").get("sup").build(spec, options={})
    out = _outputs(spec, labels=torch.tensor([1, -1, 3, -1]))
    loss = term(out)["ge"]
    s = spec.slices["digit"]
    expected = F.cross_entropy(out.raw_real[[0, 2]][:, s], torch.tensor([1, 3]))
    assert torch.allclose(loss, expected)
    out.raw_real[[1, 3]] = torch.randn(2, spec.dim) * 10  # unlabeled rows do not matter
    assert torch.allclose(term(out)["ge"], expected)


def test_sup_is_zero_without_labels():
    spec = _spec()
    term = registry("loss").get("sup").build(spec, options={})
    out = _outputs(spec, labels=torch.full((B,), -1))
    out.raw_real.requires_grad_(True)
    loss = term(out)["ge"]
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.equal(out.raw_real.grad, torch.zeros_like(out.raw_real))


def test_rec_reductions():
    spec = _spec()
    out = _outputs(spec)
    sq = (out.x_rec - out.x_real).square()
    mean = registry("loss").get("rec").build(spec, options={})(out)["ge"]
    total = registry("loss").get("rec").build(spec, options={"reduction": "sum"})(out)["ge"]
    assert torch.allclose(mean, sq.mean())
    assert torch.allclose(total, sq.flatten(1).sum(1).mean())


def test_adv_forms():
    spec = _spec()
    out = _outputs(spec)
    ns = registry("loss").get("adv").build(spec, options={})(out)
    mm = registry("loss").get("adv").build(spec, options={"form": "minimax"})(out)
    assert torch.allclose(ns["d"], mm["d"])
    assert torch.allclose(mm["ge"], -mm["d"])


def test_info_is_small_when_encoder_is_right():
    spec = _spec()
    out = _outputs(spec)
    term = registry("loss").get("info").build(spec, options={})
    out.raw_fake = out.z_fake.clone()  # exact continuous means
    for v in spec.categorical:  # confident, correct logits
        out.raw_fake[:, spec.slices[v.name]] *= 50
    assert term(out)["ge"].item() < 1e-6


def test_info_supervised_by_labels_reads_labeled_variables_through_the_fixed_encoder():
    spec = _spec()
    out = _outputs(spec)
    plain = registry("loss").get("info").build(spec, options={})
    fixed = registry("loss").get("info").build(spec, options={"supervised_by": "labels", "translations": True})
    assert fixed.needs == frozenset({"swap", "fixed_encoder"})
    out.raw_swap = out.raw_fake.clone()
    out.raw_fake_fixed, out.raw_swap_fixed = out.raw_fake.clone(), out.raw_fake.clone()
    assert torch.allclose(fixed(out)["ge"], 2 * plain(out)["ge"])  # same values; only the gradient path differs
    s = spec.slices["digit"]
    right = out.raw_fake.clone()
    right[:, s] = out.z_fake[:, s] * 50
    out.raw_fake_fixed = out.raw_swap_fixed = right  # the fixed encoder reads the labeled digit perfectly
    digit = F.cross_entropy(out.raw_fake[:, s], out.z_fake[:, s].argmax(1))
    assert torch.allclose(fixed(out)["ge"], 2 * (plain(out)["ge"] - digit), atol=1e-5)  # free "style" still read by E


def test_info_supervised_by_labels_needs_no_extra_pass_without_labeled_variables():
    spec = LatentSpec(3, [Variable("style", "categorical", classes=["a", "b"]), Variable("c1", "continuous")])
    assert registry("loss").get("info").build(spec, options={"supervised_by": "labels"}).needs == frozenset()


def test_with_fixed_weights_sends_gradients_to_the_input_only_and_keeps_batchnorm_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()
    x = torch.randn(8, 3, requires_grad=True)
    stats = net[1].running_mean.clone()
    y = with_fixed_weights(net, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(net[1].running_mean, stats)
    assert torch.allclose(y, net(x.detach()))  # the same function as the module (batch statistics)


def test_ramp_factor():
    assert ramp_factor(5, 0) == 1.0
    assert ramp_factor(1, 4) == 0.25 and ramp_factor(4, 4) == 1.0 and ramp_factor(9, 4) == 1.0


def test_info_on_translations_adds_the_same_term_for_the_translated_codes():
    spec = _spec()
    out = _outputs(spec)
    plain = registry("loss").get("info").build(spec, options={})
    both = registry("loss").get("info").build(spec, options={"translations": True})
    assert plain.needs == frozenset() and both.needs == frozenset({"swap"})
    out.raw_swap = out.raw_fake.clone()
    assert torch.allclose(both(out)["ge"], 2 * plain(out)["ge"])
    right = out.z_fake.clone()
    for v in spec.categorical:
        right[:, spec.slices[v.name]] *= 50
    out.raw_swap = right  # translations read as the requested codes: nothing added
    assert torch.allclose(both(out)["ge"], plain(out)["ge"], atol=1e-5)
