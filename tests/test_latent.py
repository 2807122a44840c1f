"""The latent spec: layout, sampling, codes, packing, setting by name, serialisation."""

import pytest
import torch

from toolkit.errors import LatentError
from toolkit.latent import LatentSpec, Variable


def _spec(u_size=4, u_prior="uniform") -> LatentSpec:
    return LatentSpec(
        u_size,
        [
            Variable("digit", "categorical", classes=[str(i) for i in range(10)], label="digit"),
            Variable("c1", "continuous"),
            Variable("style", "categorical", classes=["Thin", "Bold", "Italic"]),
            Variable("c2", "continuous", prior="normal"),
        ],
        u_prior,
    )


# -- layout --------------------------------------------------------------------------------
def test_slices_follow_declared_order():
    spec = _spec()
    assert list(spec.slices) == ["u", "digit", "c1", "style", "c2"]
    assert spec.slices["u"] == slice(0, 4)
    assert spec.slices["digit"] == slice(4, 14)
    assert spec.slices["c1"] == slice(14, 15)
    assert spec.slices["style"] == slice(15, 18)
    assert spec.slices["c2"] == slice(18, 19)
    assert spec.dim == 19
    assert spec.names == ["digit", "c1", "style", "c2"]
    assert [v.name for v in spec.categorical] == ["digit", "style"]
    assert [v.name for v in spec.continuous] == ["c1", "c2"]
    assert [v.name for v in spec.supervised] == ["digit"]
    assert spec.class_variable().name == "digit"


def test_no_variables():
    spec = LatentSpec(3, [])
    assert spec.dim == 3 and list(spec.slices) == ["u"]
    raw = torch.randn(2, 3)
    assert torch.equal(spec.code(raw), raw)


@pytest.mark.parametrize("names", [["a", "a"], ["u"]])
def test_bad_variable_names(names):
    with pytest.raises(LatentError, match="unique"):
        LatentSpec(2, [Variable(n, "continuous") for n in names])


# -- sampling ------------------------------------------------------------------------------
def test_sample_shapes_onehots_and_ranges():
    spec = _spec()
    z = spec.sample(500, generator=torch.Generator().manual_seed(0))
    assert z.shape == (500, spec.dim) and z.dtype == torch.float32
    parts = spec.unpack(z)
    for name in ("digit", "style"):
        onehot = parts[name]
        assert set(onehot.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(onehot.sum(1), torch.ones(500))
        assert (onehot.sum(0) > 0).all()  # every class drawn at least once in 500
    for name in ("u", "c1"):  # uniform prior
        assert parts[name].min() >= -1 and parts[name].max() <= 1
        assert parts[name].min() < -0.9 and parts[name].max() > 0.9
    assert parts["c2"].abs().max() > 1  # normal prior reaches beyond [-1, 1] in 500 draws


def test_sample_is_reproducible_with_generator():
    spec = _spec()
    a = spec.sample(8, generator=torch.Generator().manual_seed(3))
    b = spec.sample(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_normal_u_prior():
    z = _spec(u_size=64, u_prior="normal").sample(64, generator=torch.Generator().manual_seed(0))
    assert z[:, :64].abs().max() > 1


# -- codes and packing ---------------------------------------------------------------------
def test_code_softmaxes_only_categorical_slices():
    spec = _spec()
    raw = torch.randn(5, spec.dim) * 3
    code = spec.code(raw)
    assert code.shape == raw.shape
    for name in ("u", "c1", "c2"):
        s = spec.slices[name]
        assert torch.equal(code[:, s], raw[:, s])
    for name in ("digit", "style"):
        s = spec.slices[name]
        assert torch.allclose(code[:, s], torch.softmax(raw[:, s], dim=1))
        assert torch.allclose(code[:, s].sum(1), torch.ones(5))


def test_harden_gives_one_hots_forward_and_the_soft_gradient_backward():
    spec = _spec()
    raw = (torch.randn(6, spec.dim) * 3).requires_grad_(True)
    code = spec.code(raw)
    hard = spec.harden(code)
    for name in ("u", "c1", "c2"):
        s = spec.slices[name]
        assert torch.equal(hard[:, s], code[:, s])
    for name in ("digit", "style"):
        s = spec.slices[name]
        expected = torch.nn.functional.one_hot(code[:, s].argmax(1), s.stop - s.start).float()
        assert torch.equal(hard[:, s].detach(), expected)
    weights = torch.randn(spec.dim)
    (hard * weights).sum().backward()
    straight = raw.grad.clone()
    raw.grad = None
    (spec.code(raw) * weights).sum().backward()
    assert torch.allclose(straight, raw.grad)  # straight-through: the gradient of the soft code


def test_with_labels_sets_labeled_rows_one_hot_and_keeps_the_rest():
    spec = _spec()
    z = spec.code(torch.randn(4, spec.dim))
    labeled = spec.with_labels(z, {"digit": torch.tensor([3, -1, 0, -1])})
    digit = spec.slices["digit"]
    assert torch.equal(labeled[0, digit], torch.nn.functional.one_hot(torch.tensor(3), 10).float())
    assert torch.equal(labeled[2, digit], torch.nn.functional.one_hot(torch.tensor(0), 10).float())
    assert torch.equal(labeled[[1, 3]], z[[1, 3]])  # unlabeled rows keep their code
    others = [i for i in range(spec.dim) if i not in range(digit.start, digit.stop)]
    assert torch.equal(labeled[:, others], z[:, others])  # u, continuous and unlabeled variables too


def test_code_with_categorical_last():
    spec = LatentSpec(2, [Variable("c", "continuous"), Variable("k", "categorical", classes=["a", "b"])])
    raw = torch.randn(3, spec.dim)
    code = spec.code(raw)
    assert torch.equal(code[:, :3], raw[:, :3])
    assert torch.allclose(code[:, 3:], torch.softmax(raw[:, 3:], dim=1))


def test_assign_sets_classes_one_hot_or_past_it_with_a_strength():
    spec = _spec()
    z = spec.sample(2)
    one_hot = spec.assign(z, {"style": 1, "c1": 0.25})
    assert one_hot[:, spec.slices["style"]].tolist() == [[0.0, 1.0, 0.0]] * 2
    assert (one_hot[:, spec.slices["c1"]] == 0.25).all()
    strong = spec.assign(z, {"style": 1, "c1": 0.25}, strength=2.5)
    expected = torch.tensor([-0.5, 2.0, -0.5])  # 1/3 + 2.5 * (one_hot - 1/3)
    assert torch.allclose(strong[:, spec.slices["style"]], expected.expand(2, 3))
    assert (strong[:, spec.slices["c1"]] == 0.25).all()  # numbers are set as given
    assert torch.equal(strong[:, spec.slices["digit"]], z[:, spec.slices["digit"]])  # others untouched


def test_pack_unpack_round_trip():
    spec = _spec()
    z = spec.sample(6)
    parts = spec.unpack(z)
    assert set(parts) == {"u", "digit", "c1", "style", "c2"}
    assert parts["u"].shape == (6, 4) and parts["digit"].shape == (6, 10) and parts["c1"].shape == (6, 1)
    assert torch.equal(spec.pack(parts), z)
    parts["c1"] = parts["c1"].reshape(6)  # a 1-D continuous part is accepted
    assert torch.equal(spec.pack(parts), z)


def test_pack_missing_part():
    spec = _spec()
    parts = spec.unpack(spec.sample(2))
    del parts["style"]
    with pytest.raises(LatentError, match="missing style"):
        spec.pack(parts)


# -- parsing assignments -------------------------------------------------------------------
def test_parse_assignments_by_name_index_and_number():
    spec = _spec()
    assert spec.parse_assignments(["style=bold"]) == {"style": 1}
    assert spec.parse_assignments(["style=ITALIC"]) == {"style": 2}
    assert spec.parse_assignments(["style=0", "digit=7"]) == {"style": 0, "digit": 7}
    assert spec.parse_assignments([" c1 = 0.5 ", "c2=-3.5"]) == {"c1": 0.5, "c2": -3.5}
    assert spec.parse_assignments({"digit": 3, "c1": "-1"}) == {"digit": 3, "c1": -1.0}
    assert spec.parse_assignments([]) == {}
    assert spec.parse_assignments("digit=7") == {"digit": 7}  # one assignment as a plain string (the API)


def test_a_variable_set_twice_is_refused_not_resolved_silently():
    with pytest.raises(LatentError, match=r"digit set more than once \(digit=3, digit=7\): give each variable once"):
        _spec().parse_assignments(["digit=3", "c1=0", "digit=7"])


def test_sweeps_span_the_bulk_of_each_prior():
    assert Variable("c", "continuous").sweep(5) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert Variable("c", "continuous", prior="normal").sweep(3) == [-2.0, 0.0, 2.0]


def test_class_names_take_precedence_over_indices():
    spec = LatentSpec(1, [Variable("k", "categorical", classes=["2", "0", "1"])])
    assert spec.parse_assignments(["k=2"]) == {"k": 0}


def test_unknown_variable_lists_names():
    with pytest.raises(LatentError) as info:
        _spec().parse_assignments(["digt=3"])
    message = str(info.value)
    assert "digt" in message and "did you mean 'digit'" in message
    for name in ("digit", "c1", "style", "c2"):
        assert name in message


def test_unknown_class_lists_classes():
    with pytest.raises(LatentError) as info:
        _spec().parse_assignments(["style=bolder"])
    message = str(info.value)
    assert "'bolder' is not a class of 'style'" in message
    assert "Thin, Bold, Italic" in message


@pytest.mark.parametrize("value", ["3", "10", "-1"])
def test_index_out_of_range(value):
    spec = _spec()
    variable = "style" if value == "3" else "digit"
    with pytest.raises(LatentError, match="out of range"):
        spec.parse_assignments([f"{variable}={value}"])


@pytest.mark.parametrize("value", ["abc", "1,5", "0x1"])
def test_continuous_needs_a_number(value):
    with pytest.raises(LatentError, match=f"'c1' is continuous: expected a number, got '{value}'"):
        _spec().parse_assignments([f"c1={value}"])


@pytest.mark.parametrize(
    ("item", "ok"),
    [("c1=2", True), ("c1=-2", True), ("c1=2.01", False), ("c1=nan", False), ("c1=inf", False),
     ("c2=4", True), ("c2=-4.5", False)],
)
def test_continuous_range(item, ok):
    spec = _spec()
    if ok:
        spec.parse_assignments([item])
    else:
        with pytest.raises(LatentError, match="out of range"):
            spec.parse_assignments([item])


@pytest.mark.parametrize("item", ["x", "digit", "=3", "digit=", "digit= "])
def test_malformed_assignment(item):
    with pytest.raises(LatentError) as info:
        _spec().parse_assignments([item])
    message = str(info.value)
    assert "VARIABLE=VALUE" in message and f"'{item}'" in message
    assert "digit, c1, style, c2" in message


# -- assigning -----------------------------------------------------------------------------
def test_assign_sets_onehot_and_value_only():
    spec = _spec()
    z = spec.sample(4, generator=torch.Generator().manual_seed(1))
    before = z.clone()
    out = spec.assign(z, {"style": 2, "c1": 0.25})
    assert torch.equal(z, before)  # input untouched
    s = spec.slices["style"]
    assert torch.equal(out[:, s], torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))
    assert torch.equal(out[:, spec.slices["c1"]], torch.full((4, 1), 0.25))
    for name in ("u", "digit", "c2"):
        assert torch.equal(out[:, spec.slices[name]], z[:, spec.slices[name]])


def test_assign_parsed_values():
    spec = _spec()
    z = spec.assign(spec.sample(2), spec.parse_assignments(["digit=7"]))
    assert z[:, spec.slices["digit"]].argmax(1).tolist() == [7, 7]
    assert torch.equal(z[:, spec.slices["digit"]].sum(1), torch.ones(2))


def test_labels_to_onehot():
    spec = _spec()
    assert torch.equal(spec.labels_to_onehot("style", torch.tensor([2, 0])), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))


# -- serialisation -------------------------------------------------------------------------
def test_to_dict_from_dict_round_trip():
    spec = _spec(u_prior="normal")
    data = spec.to_dict()
    assert data["u_size"] == 4 and data["u_prior"] == "normal"
    assert [v["name"] for v in data["variables"]] == ["digit", "c1", "style", "c2"]
    again = LatentSpec.from_dict(data)
    assert again == spec
    assert again.slices == spec.slices and again.dim == spec.dim
    assert again["style"].classes == ["Thin", "Bold", "Italic"]
    assert again["digit"].label == "digit" and again["c2"].prior == "normal"


def test_from_dict_default_u_prior():
    data = _spec().to_dict()
    del data["u_prior"]
    assert LatentSpec.from_dict(data).u_prior == "uniform"


def test_describe_mentions_every_variable():
    text = _spec().describe()
    assert "u: 4 dims, uniform prior" in text
    assert "digit: categorical" in text and "supervised by 'digit'" in text
    assert "style: categorical (Thin, Bold, Italic), free" in text
    assert "c2: continuous, normal prior" in text


def test_with_variables_of_keeps_u_and_takes_every_variable():
    spec = _spec()
    a, b = spec.sample(3), spec.sample(3)
    mixed = spec.with_variables_of(a, b)
    assert torch.equal(mixed[:, spec.slices["u"]], a[:, spec.slices["u"]])
    for name in spec.names:
        assert torch.equal(mixed[:, spec.slices[name]], b[:, spec.slices[name]])


# -- categorical priors beyond the paper's uniform one -------------------------------------
def test_a_weighted_categorical_prior_draws_each_class_at_its_share():
    spec = LatentSpec(2, [Variable("pale", "categorical", classes=["no", "yes"], label="pale", weights=[0.96, 0.04])])
    z = spec.sample(20000, generator=torch.Generator().manual_seed(0))
    share = z[:, spec.slices["pale"]].mean(0)
    assert abs(share[1].item() - 0.04) < 0.006 and (z[:, spec.slices["pale"]].sum(1) == 1).all()
    again = LatentSpec.from_dict(spec.to_dict())
    assert again == spec and again["pale"].weights == [0.96, 0.04]
    assert "pale: categorical (no, yes), supervised by 'pale', prior 0.960 0.040" in spec.describe()


def test_specs_saved_before_weighted_priors_load_as_uniform():
    data = _spec().to_dict()
    for v in data["variables"]:
        del v["weights"]
    assert LatentSpec.from_dict(data)["digit"].weights is None


def test_class_weights_from_labels_or_given():
    from toolkit.errors import ToolkitError
    from toolkit.latent import class_weights

    labels = torch.tensor([0, 0, 0, 1, -1, -1])  # -1: no label, not counted
    assert class_weights("uniform", ["no", "yes"], labels, "v") is None
    assert class_weights("empirical", ["no", "yes"], labels, "v") == pytest.approx([0.75, 0.25])
    assert class_weights([3, 1], ["no", "yes"], None, "v") == pytest.approx([0.75, 0.25])
    with pytest.raises(ToolkitError, match=r"^v\.prior: empirical, but class maybe has no labeled images"):
        class_weights("empirical", ["no", "yes", "maybe"], labels, "v")
    with pytest.raises(ToolkitError, match=r"^v\.prior: 3 class weights for 2 classes \(no, yes\)"):
        class_weights([1, 1, 1], ["no", "yes"], None, "v")
