"""The paper plugin's additions: FixMatch consistency, the R1/R2 penalty, the hinge loss and
spectral normalisation, checked through the same contract tests every plugin term gets."""

import pytest
import torch

from toolkit.losses import build_losses
from toolkit.networks import build_networks
from toolkit.recipe import LossConfig
from toolkit.testing import linear_networks, smoke_test_loss, tiny_spec
from toolkit.train import ForwardPasses


@pytest.mark.parametrize("name,options", [
    ("consistency", {"threshold": 0.0}),
    ("consistency", {"teacher": "averaged", "threshold": 0.0}),
    ("consistency", {"unlabeled_ratio": 2, "threshold": 0.0}),
    ("consistency", {"weighting": "soft", "alignment": "prior"}),
    ("sup", {"augment": ["affine", "translation"]}),
    ("r1", {}),
    ("r1", {"target": "fake", "wrt_code": False}),
    ("adv", {"form": "hinge"}),
    ("info", {"augment": ["translation", "blur", "noise"]}),
    ("info", {"augment": ["blur"], "translations": True, "supervised_by": "labels"}),
    ("mode_seeking", {}),
    ("vat", {}),
    ("vat", {"unlabeled_ratio": 2, "epsilon": 0.5}),
])
def test_new_terms_pass_the_plugin_contract(name, options):
    parts = smoke_test_loss(name, options)
    assert set(parts) <= {"ge", "d"}


def _step(terms, step=1, batch=6):
    spec = tiny_spec()
    torch.manual_seed(0)
    nets = linear_networks(spec)
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, terms=terms)
    outputs, extra = forward(torch.rand(batch, 1, 28, 28), spec.sample(batch), step)
    return spec, nets, outputs, extra


def test_consistency_trains_the_encoder_only_and_its_threshold_masks_rows():
    spec = tiny_spec()
    terms = build_losses({"consistency": LossConfig(options={"threshold": 0.0})}, spec)
    _, nets, outputs, extra = _step(terms)
    from toolkit.losses import StepOutputs

    out = StepOutputs(torch.zeros(1), {}, z_fake=None, step=1, extra=extra, **outputs)
    loss = terms["consistency"](out)["ge"]
    assert loss > 0
    grads = torch.autograd.grad(loss, list(nets.encoder.parameters()) + list(nets.generator.parameters()),
                                allow_unused=True)
    n_enc = len(list(nets.encoder.parameters()))
    assert any(g is not None for g in grads[:n_enc])
    assert all(g is None for g in grads[n_enc:]), "the pseudo-labels come from E on real images: G is not trained"
    strict = build_losses({"consistency": LossConfig(options={"threshold": 1.0})}, spec)
    strict["consistency"].name = "consistency"
    assert strict["consistency"](out)["ge"].item() == 0.0, "no row is confident at threshold 1"


def test_consistency_with_an_unlabeled_ratio_reads_the_batch_and_the_more_images():
    spec = tiny_spec()
    options = {"unlabeled_ratio": 3, "threshold": 0.0, "weak": []}  # an untransformed weak view: E's plain codes
    terms = build_losses({"consistency": LossConfig(options=options)}, spec)
    assert terms["consistency"].unlabeled_ratio == 3
    torch.manual_seed(0)
    nets = linear_networks(spec)
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, terms=terms)
    x_real, x_more = torch.rand(4, 1, 28, 28), torch.rand(12, 1, 28, 28)
    _, extra = forward(x_real, spec.sample(4), 1, x_more)
    views = extra["consistency"]
    assert views["weak"].shape == views["strong"].shape == (16, spec.dim), "(1 + mu) * B rows: the batch and mu * B more"
    with torch.no_grad():
        plain = nets.encoder(torch.cat([x_real, x_more]))
    torch.testing.assert_close(views["weak"], plain)  # the batch first, then the more images, in order


def test_an_averaged_teacher_reads_the_weak_view_with_the_averaged_weights_and_no_gradient():
    from toolkit.ema import WeightAverage

    spec = tiny_spec()
    torch.manual_seed(0)
    nets = build_networks("paper28", spec, (1, 28, 28), {"width": 0.25})  # E with BatchNorm
    average = WeightAverage(nets.ge_parts(), 0.99)
    with torch.no_grad():
        for p in nets.encoder.parameters():
            p.add_(1.0)  # the training weights move away from their average
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, average=average)
    x = torch.rand(5, 1, 28, 28)
    before = [b.clone() for b in nets.encoder.buffers()]
    teacher = forward.averaged_encoder(x)
    assert not teacher.requires_grad
    unmoved = nets.encoder
    with torch.no_grad():
        for p in unmoved.parameters():
            p.sub_(1.0)  # back to the averaged weights
    assert all(torch.equal(a, b) for a, b in zip(before, nets.encoder.buffers())), "E's running statistics untouched"
    assert torch.allclose(teacher, unmoved(x), atol=1e-5), "the teacher is E with the averaged weights, in training mode"
    off = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec)
    with pytest.raises(Exception, match="train.ema"):
        off.averaged_encoder(x)
    term = build_losses({"consistency": LossConfig(options={"teacher": "averaged"})}, spec)["consistency"]
    assert "averaged_encoder" in term.needs


def test_softmatch_weights_unsure_rows_a_little_and_confident_rows_fully():
    spec = tiny_spec()
    term = build_losses({"consistency": LossConfig(options={"weighting": "soft", "momentum": 0.01})}, spec)["consistency"]
    # confidences 0.97, 0.7, 0.4 and 0.25 (uniform over the 4 classes) on class 0
    logits = torch.tensor([[4.0, 0.5, 0.5, 0.5], [2.0, 0.85, 0.85, 0.85], [0.9, 0.32, 0.32, 0.32], [0.0, 0.0, 0.0, 0.0]])
    confidence = logits.softmax(1).max(1).values
    pseudo, weight = term.pseudo_labels("shape", logits)
    mu = 0.01 * 0.25 + 0.99 * confidence.mean()  # the running mean starts at 1/K, the variance at 1
    var = 0.01 * 1.0 + 0.99 * confidence.var()
    expected = torch.exp(-(confidence - mu).clamp(max=0).square() / (2 * var / 4))
    torch.testing.assert_close(weight, expected)
    assert weight[0] == weight[1] == 1.0 and 0 < weight[3] < weight[2] < 1.0, "above the mean: 1; below: less, the less sure"
    fixmatch = build_losses({"consistency": LossConfig(options={"threshold": 0.9})}, spec)["consistency"]
    assert fixmatch.pseudo_labels("shape", logits)[1].tolist() == [1.0, 0.0, 0.0, 0.0], "FixMatch: all or nothing"
    slow = build_losses({"consistency": LossConfig(options={"weighting": "soft", "momentum": 0.9})}, spec)["consistency"]
    for _ in range(200):  # a confident E: the running mean rises and unsure rows count for less and less
        slow.pseudo_labels("shape", logits[:1].repeat(4, 1))
    assert slow.pseudo_labels("shape", logits)[1][1] < 0.01


def test_alignment_to_the_prior_turns_a_leaning_encoder_to_the_classes_it_neglects():
    from toolkit.latent import LatentSpec, Variable

    spec = LatentSpec(3, [Variable("shape", "categorical", classes=["a", "b"], label="shape", weights=[0.5, 0.5])])
    term = build_losses({"consistency": LossConfig(options={"alignment": "prior", "threshold": 0.0, "momentum": 0.01})},
                        spec)["consistency"]
    leaning = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.2, 0.0], [-0.2, 0.0]])  # E reads "a" in 3 of 4 images
    plain = build_losses({"consistency": LossConfig(options={"threshold": 0.0})}, spec)["consistency"]
    assert plain.pseudo_labels("shape", leaning)[0].tolist() == [0, 0, 0, 1]
    pseudo, _ = term.pseudo_labels("shape", leaning)
    assert pseudo.tolist() == [0, 0, 1, 1], "divided by E's mean prediction, the nearly even image goes to the rarer class"
    state = term.state_dict()
    assert set(state) == {"shape.mean_prediction"} and torch.allclose(state["shape.mean_prediction"].sum(), torch.tensor(1.0))
    again = build_losses({"consistency": LossConfig(options={"alignment": "prior", "threshold": 0.0, "momentum": 0.01})},
                         spec)["consistency"]
    again.load_state_dict(state)
    torch.testing.assert_close(again.pseudo_labels("shape", leaning), term.pseudo_labels("shape", leaning))


def test_supervised_through_transforms_reads_the_labeled_rows_of_its_own_view():
    from toolkit.losses import StepOutputs, has_extra_passes

    spec = tiny_spec()
    assert not has_extra_passes(build_losses({"sup": LossConfig()}, spec)["sup"]), "the paper's term: no extra pass"
    terms = build_losses({"sup": LossConfig(options={"augment": ["affine", "translation"]})}, spec)
    _, nets, outputs, extra = _step(terms)
    labels = torch.tensor([1, -1, -1, 0, -1, 3])
    out = StepOutputs(torch.zeros(1), {"shape": labels}, z_fake=None, step=1, extra=extra, **outputs)
    loss = terms["sup"](out)["ge"]
    seen = extra["sup"]["raw"][:, spec.slices["shape"]]
    known = labels >= 0
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(seen[known], labels[known]))
    assert not torch.allclose(seen, outputs["raw_real"][:, spec.slices["shape"]]), "E read transformed images"
    grads = torch.autograd.grad(loss, list(nets.generator.parameters()) + list(nets.encoder.parameters()),
                                allow_unused=True)
    n_gen = len(list(nets.generator.parameters()))
    assert all(g is None for g in grads[:n_gen]) and any(g is not None for g in grads[n_gen:]), "trains E only"


def test_vat_perturbs_in_the_direction_that_changes_e_most_by_epsilon_and_trains_e_only():
    from types import SimpleNamespace

    from toolkit.losses import StepOutputs

    spec = tiny_spec()
    term = build_losses({"vat": LossConfig(options={"epsilon": 0.1})}, spec)["vat"]
    _, nets, outputs, extra = _step({"vat": term})
    out = StepOutputs(torch.zeros(1), {}, z_fake=None, step=1, extra=extra, **outputs)
    loss = term(out)["ge"]
    assert loss > 0
    n_enc = len(list(nets.encoder.parameters()))
    grads = torch.autograd.grad(loss, list(nets.encoder.parameters()) + list(nets.generator.parameters()),
                                allow_unused=True)
    assert any(g is not None for g in grads[:n_enc])
    assert all(g is None for g in grads[n_enc:]), "the term reads E on real images: G is not trained"

    x = torch.rand(6, 1, 28, 28)

    def found(epsilon):
        term.options.epsilon = epsilon
        torch.manual_seed(1)  # the same random start of the power iteration
        with torch.no_grad():
            raw = nets.encoder(x)
        views = term.extra_passes(SimpleNamespace(encoder=nets.encoder), {"x_real": x, "raw_real": raw}, 1)
        return term._divergence(views["clean"], views["perturbed"]).mean().item()

    with torch.no_grad():
        clean = nets.encoder(x)
        directions = [torch.randn_like(x) for _ in range(20)]
        random = sum(term._divergence(clean, nets.encoder(x + 0.1 * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)))
                     .mean().item() for d in directions) / len(directions)
    assert found(0.1) > 20 * random, "the adversarial direction beats random ones of the same norm"
    assert 3.5 < found(0.2) / found(0.1) < 4.5, "KL grows as epsilon^2 for small epsilon: r has norm epsilon"

    blind = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, spec.dim))
    with torch.no_grad():
        blind[1].weight.zero_()  # an E that ignores its image: no direction changes it
    views = term.extra_passes(SimpleNamespace(encoder=blind), {"x_real": x, "raw_real": blind(x)}, 1)
    assert term._divergence(views["clean"], views["perturbed"]).abs().max().item() == 0.0


def test_vat_without_a_labeled_variable_is_refused():
    from toolkit.errors import RecipeError
    from toolkit.latent import LatentSpec, Variable

    spec = LatentSpec(3, [Variable("c1", "continuous")])
    with pytest.raises(RecipeError, match="losses.vat"):
        build_losses({"vat": LossConfig()}, spec)


def test_r1_is_the_squared_input_gradient_of_d_and_runs_lazily():
    spec = tiny_spec()
    terms = build_losses({"r1": LossConfig(options={"gamma": 2.0, "every": 3})}, spec)
    _, nets, outputs, extra = _step(terms, step=1)
    from toolkit.losses import StepOutputs

    x = torch.rand(6, 1, 28, 28, requires_grad=True)
    z = spec.sample(6).requires_grad_(True)
    # the trainer's pass saw its own batch; recompute the penalty by hand on that batch's inputs
    penalty = extra["r1"]["penalty"]
    assert penalty > 0 and penalty.requires_grad
    out = StepOutputs(x, {}, z_fake=None, step=1, extra=extra, **outputs)
    d_part = terms["r1"](out)["d"]
    assert torch.allclose(d_part, 0.5 * 2.0 * 3 * penalty)
    # a linear D has a constant input gradient: the penalty is its squared norm
    logits = nets.discriminator(x, z)
    gx, gz = torch.autograd.grad(logits.sum(), [x, z])
    expected = (gx.flatten(1).square().sum(1) + gz.square().sum(1)).mean()
    assert torch.allclose(penalty, expected, rtol=1e-5)
    for skipped in (2, 3):
        _, _, outputs, extra = _step(terms, step=skipped)
        assert extra["r1"] == {}
        assert terms["r1"](StepOutputs(x, {}, z_fake=None, step=skipped, extra=extra, **outputs))["d"].item() == 0
    assert _step(terms, step=4)[3]["r1"], "computed again 3 steps later"


def test_mode_seeking_compares_two_draws_that_differ_only_in_u_and_trains_g_only():
    from toolkit.losses import StepOutputs

    spec = tiny_spec()
    terms = build_losses({"mode_seeking": LossConfig()}, spec)
    terms["mode_seeking"].name = "mode_seeking"
    torch.manual_seed(0)
    nets = linear_networks(spec)
    drawn = []
    nets.generator.register_forward_hook(lambda module, args, out: drawn.append(args[0]))
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, terms=terms)
    outputs, extra = forward(torch.rand(6, 1, 28, 28), spec.sample(6), 1)
    z1, z2 = drawn[0], drawn[-1]  # the step's G(z), then the term's second draw
    u = spec.slices["u"]
    others = [i for i in range(spec.dim) if i not in range(u.start, u.stop)]
    assert torch.equal(z1[:, others], z2[:, others]) and not torch.equal(z1[:, u], z2[:, u])
    x1, x2 = nets.generator(z1), nets.generator(z2)
    ratio = (x2 - x1).abs().mean() / (z2[:, u] - z1[:, u]).abs().mean()
    out = StepOutputs(torch.zeros(1), {}, z_fake=None, step=1, extra=extra, **outputs)
    loss = terms["mode_seeking"](out)["ge"]
    assert torch.allclose(loss, 1 / (ratio + 1e-5), rtol=1e-4)
    grads = torch.autograd.grad(loss, list(nets.generator.parameters()) + list(nets.encoder.parameters())
                                + list(nets.discriminator.parameters()), allow_unused=True)
    n_gen = len(list(nets.generator.parameters()))
    assert any(g is not None and g.abs().sum() > 0 for g in grads[:n_gen])
    assert all(g is None for g in grads[n_gen:]), "only G is trained by the term"


def test_mode_seeking_without_u_is_refused_before_training():
    from toolkit.errors import RecipeError
    from toolkit.latent import LatentSpec, Variable

    spec = LatentSpec(0, [Variable("k", "categorical", classes=["a", "b"])])
    with pytest.raises(RecipeError, match="latent.u.size is 0"):
        build_losses({"mode_seeking": LossConfig()}, spec)


def test_the_trainers_loss_checks_accept_a_lazy_terms_constant_on_its_off_steps():
    from toolkit.errors import PluginError
    from toolkit.losses import StepOutputs, run_term

    spec = tiny_spec()
    terms = build_losses({"r1": LossConfig(options={"every": 2})}, spec)
    for step in (1, 2, 3):
        _, _, outputs, extra = _step(terms, step=step)
        out = StepOutputs(torch.zeros(1), {}, z_fake=None, step=step, extra=extra, **outputs)
        parts = run_term("r1", terms["r1"], out)  # step 2: {"d": 0}, a constant, and no error
        assert parts["d"].requires_grad == (step != 2)
    # a term without passes of its own still may not return a constant
    detached = build_losses({"adv": LossConfig()}, spec)["adv"]
    out = StepOutputs(torch.zeros(1), {}, z_fake=None, step=2, extra={}, **{k: v.detach() for k, v in outputs.items()})
    with pytest.raises(PluginError, match="does not depend on"):
        run_term("adv", detached, out)


def test_hinge_losses_follow_their_definition():
    from toolkit.losses import StepOutputs

    (adv,) = build_losses({"adv": LossConfig(options={"form": "hinge"})}, tiny_spec()).values()
    d_real, d_fake = torch.tensor([[2.0], [0.5]]), torch.tensor([[-3.0], [0.0]])
    out = StepOutputs(None, {}, None, None, None, None, None, None, d_real, d_fake)
    parts = adv(out)
    assert parts["d"].item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert parts["ge"].item() == pytest.approx(1.25 - (-1.5))


def test_spectral_norm_bounds_every_d_layer():
    spec = tiny_spec()
    nets = build_networks("paper28", spec, (1, 28, 28), {"width": 0.125, "d_spectral_norm": True})
    layers = [m for m in nets.discriminator.modules() if hasattr(m, "parametrizations")]
    assert len(layers) >= 7
    nets.train()
    for _ in range(20):  # power iterations run in training forwards
        nets.discriminator(torch.rand(4, 1, 28, 28), spec.sample(4))
    for m in layers:
        w = m.weight.flatten(1)
        assert float(torch.linalg.matrix_norm(w.detach(), ord=2)) == pytest.approx(1.0, abs=0.05)
    plain = build_networks("paper28", spec, (1, 28, 28), {"width": 0.125})
    assert not any(hasattr(m, "parametrizations") for m in plain.discriminator.modules())


@pytest.mark.parametrize("network,shape", [("paper28", (1, 28, 28)), ("paper32", (3, 32, 32))])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_projection_scores_an_image_against_its_class_code(network, shape, spectral_norm):
    spec = tiny_spec()
    options = {"width": 0.125, "d_projection": True, "d_spectral_norm": spectral_norm, "d_regularizer": "none"}
    torch.manual_seed(0)
    d = build_networks(network, spec, shape, options).discriminator.eval()
    name = spec.categorical[0].name
    s = spec.slices[name]
    x, z = torch.rand(4, *shape), spec.sample(4)
    other = z.clone()
    other[:, s] = torch.roll(z[:, s], 1, dims=1)  # every row another class, the rest of the code the same
    start = d(x, z)
    assert torch.isfinite(start).all()
    with torch.no_grad():  # a trained-size embedding (spectral norm rescales its own copy to norm 1)
        for layer in d.projection.values():
            torch.nn.init.normal_(layer.parametrizations.weight.original if spectral_norm else layer.weight)
    moved = (d(x, z) - d(x, other)).abs()
    joint = d.joint(torch.cat([d.image(x), d.code(z)], 1)) - d.joint(torch.cat([d.image(x), d.code(other)], 1))
    assert (moved - joint.abs()).abs().max() > 1e-3, "the class embedding changes D's score beyond the joint path"
    d.train()
    d(x, z).sum().backward()
    grads = [p.grad for layer in d.projection.values() for p in layer.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    plain = build_networks(network, spec, shape, {"width": 0.125}).discriminator
    assert len(plain.projection) == 0


@pytest.mark.parametrize("translations,supervised_by", [(False, "labels_and_samples"), (True, "labels")])
def test_information_with_augment_shows_e_the_transformed_generated_images(translations, supervised_by):
    from toolkit.losses import StepOutputs

    spec = tiny_spec()
    options = {"augment": ["cutout"], "translations": translations, "supervised_by": supervised_by}
    terms = build_losses({"info": LossConfig(options=options)}, spec)
    assert terms["info"].needs == frozenset(), "its own passes replace the step's translation and fixed-E passes"
    torch.manual_seed(0)
    nets = linear_networks(spec)
    seen = []
    nets.encoder.register_forward_hook(lambda module, args, result: seen.append(args[0].detach()))
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, terms=terms)
    z = spec.sample(6)
    outputs, extra = forward(torch.rand(6, 1, 28, 28), z, 1)
    views = extra["info"]
    expected = {"fake"} | ({"swap"} if translations else set())
    expected |= {f"{k}_fixed" for k in expected} if supervised_by == "labels" else set()
    assert set(views) == expected and "raw_swap" not in outputs
    x_fake = outputs["x_fake"]
    through_term = [x for x in seen[2:] if x.shape == x_fake.shape]  # E(x), E(G(z)) come first
    assert through_term, "E read the term's views"
    cut = (through_term[0] == 0).flatten(1).sum(1) - (x_fake == 0).flatten(1).sum(1)
    assert (cut > 0).all(), "E reads G's images with a square cut out of each"
    out = StepOutputs(torch.zeros(1), {}, z_fake=z, step=1, extra=extra, **outputs)
    loss = terms["info"](out)["ge"]
    grads = torch.autograd.grad(loss, list(nets.generator.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "the term trains G through the transform"


def test_information_without_augment_is_the_papers_term():
    from toolkit_paper.losses import AugmentedInformation, Information

    spec = tiny_spec()
    plain = build_losses({"info": LossConfig()}, spec)["info"]
    augmented = build_losses({"info": LossConfig(options={"augment": ["blur"]})}, spec)["info"]
    assert type(plain) is Information and isinstance(augmented, AugmentedInformation)


def test_information_augments_only_the_named_variables_and_refuses_unknown_ones():
    from toolkit.errors import RecipeError
    from toolkit.losses import StepOutputs

    spec = tiny_spec()
    options = {"augment": ["cutout"], "augment_variables": ["shape"], "translations": True}
    terms = build_losses({"info": LossConfig(options=options)}, spec)
    torch.manual_seed(0)
    nets = linear_networks(spec)
    forward = ForwardPasses(nets.generator, nets.encoder, nets.discriminator, spec, terms=terms)
    z = spec.sample(6)
    outputs, extra = forward(torch.rand(6, 1, 28, 28), z, 1)
    views = extra["info"]
    assert set(views) == {"fake", "swap", "swap_plain"}
    term = terms["info"]
    s = spec.slices["shape"]

    def read(seen, plain):  # "shape" through the transform, every other variable from the plain images
        mixed = plain.clone()
        mixed[:, s] = seen[:, s]
        return mixed

    expected = term._nll(read(views["fake"], outputs["raw_fake"]), z) + term._nll(read(views["swap"], views["swap_plain"]), z)
    got = term(StepOutputs(torch.zeros(1), {}, z_fake=z, step=1, extra=extra, **outputs))["ge"]
    assert torch.allclose(got, expected)
    assert not torch.allclose(got, term._nll(views["fake"], z) + term._nll(views["swap"], z))
    with pytest.raises(RecipeError, match="unknown latent variable 'smile'"):
        build_losses({"info": LossConfig(options={"augment": ["blur"], "augment_variables": ["smile"]})}, spec)
    with pytest.raises(RecipeError, match="augment_variables needs losses.info.options.augment"):
        build_losses({"info": LossConfig(options={"augment_variables": ["shape"]})}, spec)
