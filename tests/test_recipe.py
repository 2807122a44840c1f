"""Recipes: loading, strict validation with clear errors, overrides, plugin resolution."""

from pathlib import Path

import pytest
import torch
import yaml

from toolkit.errors import RecipeError
from toolkit.plugins import resolve
from toolkit.recipe import (
    Recipe,
    apply_overrides,
    load_recipe,
    parse_recipe,
    read_yaml,
    to_yaml,
)

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
QUICKSTART = RECIPES / "quickstart.yaml"


def _write(tmp_path: Path, data, name="recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _quickstart_data() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


# -- loading -------------------------------------------------------------------------------
def test_load_quickstart():
    recipe = load_recipe(QUICKSTART)
    assert isinstance(recipe, Recipe)
    assert recipe.name == "quickstart"
    assert recipe.data.dataset == "fashion-mnist-mini" and recipe.data.labels == 500
    assert recipe.latent.u.size == 16 and recipe.latent.u.prior == "uniform"
    assert list(recipe.latent.variables) == ["item", "c1", "c2"]
    assert recipe.latent.variables["item"].label == "item"
    assert recipe.model.network == "paper28" and recipe.model.options["width"] == 0.5
    assert recipe.model.options["d_projection"] is True
    assert list(recipe.losses) == ["sup", "rec", "info", "adv", "consistency"]
    assert recipe.losses["info"].ramp == 300 and recipe.losses["sup"].weight == 10
    assert recipe.losses["consistency"].options == {"threshold": 0.9}
    assert recipe.optim.lr_d == pytest.approx(1e-3) and recipe.optim.betas == (0.5, 0.999)
    assert recipe.train.d_augment == ["translation", "cutout"] and recipe.train.ema == 0.99
    assert recipe.train.d_batch == "joint" and recipe.train.d_code == "labels"
    assert recipe.train.steps == 1200 and recipe.train.keep_checkpoints == 3  # a default


def test_load_mnist_plus_with_what_measured_better():
    recipe = load_recipe(RECIPES / "mnist-plus.yaml")
    assert recipe.data.dataset == "mnist" and recipe.data.labels == 100 and recipe.data.labeled_floor == 0.2
    assert recipe.model.options["width"] == 0.5 and recipe.model.options["g_upsampling"] == "resize"
    assert recipe.model.options["d_projection"] is True
    assert recipe.losses["consistency"].options["strong"][0] == "affine"
    assert recipe.train.d_batch == "joint" and recipe.train.d_code == "soft" and recipe.train.steps == 5000


def test_yaml_round_trip():
    recipe = load_recipe(QUICKSTART)
    assert parse_recipe(yaml.safe_load(to_yaml(recipe))) == recipe


def test_unknown_top_level_key(tmp_path):
    data = _quickstart_data()
    data["trian"] = {"steps": 3}
    path = _write(tmp_path, data, "typo.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "typo.yaml" in message
    assert "trian: unknown key" in message
    assert "allowed: name, seed, data, latent, model, losses, optim, train" in message


def test_a_negative_loss_weight_is_refused_with_the_field_and_the_valid_range(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICKSTART, ["losses.sup.weight=-1"])
    message = str(info.value)
    assert "losses.sup.weight" in message and "greater than or equal to 0" in message


def test_unknown_nested_key(tmp_path):
    data = _quickstart_data()
    data["train"]["stepz"] = 10
    path = _write(tmp_path, data, "nested.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "nested.yaml" in message
    assert "train.stepz: unknown key" in message
    assert "allowed:" in message and "steps" in message and "checkpoint_every" in message


@pytest.mark.parametrize(
    ("override", "path", "guess", "allowed"),
    [
        ("latent.variables.item.lable=x", "latent.variables.item.lable", "did you mean 'label'? ", "kind, classes, label, prior"),
        ("losses.sup.wieght=1", "losses.sup.wieght", "did you mean 'weight'? ", "weight, ramp, options"),
        ("latent.u.dims=3", "latent.u.dims", "", "size, prior"),  # nothing close: no guess
    ],
)
def test_unknown_key_below_a_mapping(override, path, guess, allowed):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICKSTART, [override])
    assert f"{path}: unknown key; {guess}allowed: {allowed}" in str(info.value)


def test_a_missing_recipe_names_the_closest_one_in_its_folder(tmp_path):
    (tmp_path / "quickstart.yaml").write_text("name: x\n")
    (tmp_path / "mnist.yaml").write_text("name: y\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "quikstart.yaml")
    assert str(info.value) == (f"recipe not found: {tmp_path / 'quikstart.yaml'}; did you mean "
                               f"'{tmp_path / 'quickstart.yaml'}'? recipes in {tmp_path}: mnist.yaml, quickstart.yaml")
    with pytest.raises(RecipeError, match=r"^recipe not found: \S+zzz.yaml; recipes in \S+: mnist.yaml, quickstart.yaml$"):
        load_recipe(tmp_path / "zzz.yaml")  # nothing close: the list only
    with pytest.raises(RecipeError, match=r"^recipe not found: \S+nodir/quick.yaml$"):
        load_recipe(tmp_path / "nodir" / "quick.yaml")  # no such folder: nothing to list


@pytest.mark.parametrize(
    ("override", "path", "got"),
    [
        ("train.steps=lots", "train.steps", "'lots'"),
        ("optim.lr_d=-1", "optim.lr_d", "-1"),
        ("latent.u.prior=cauchy", "latent.u.prior", "'cauchy'"),
        ("train.steps=0", "train.steps", "0"),
        ("latent.variables.item.prior=[1, -2]", "latent.variables.item.prior", "[1, -2]"),
    ],
)
def test_wrong_type_or_value(override, path, got):
    with pytest.raises(RecipeError) as info:
        load_recipe(QUICKSTART, [override])
    message = str(info.value)
    assert str(QUICKSTART) in message
    assert f"{path}: " in message and f"(got {got})" in message


def test_missing_required_key(tmp_path):
    data = _quickstart_data()
    del data["model"]
    with pytest.raises(RecipeError, match="model: required key is missing"):
        load_recipe(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ({"kind": "categorical"}, "needs 'classes' or a 'label'"),
        ({"kind": "continuous", "classes": 3}, "takes neither"),
        ({"kind": "categorical", "classes": ["only"]}, "at least 2 classes"),
    ],
)
def test_variable_checks(variable, message):
    data = _quickstart_data()
    data["latent"]["variables"]["bad"] = variable
    with pytest.raises(RecipeError, match=message) as info:
        parse_recipe(data)
    assert "latent.variables.bad" in str(info.value)


def test_optim_checks():
    with pytest.raises(RecipeError, match="same length"):
        load_recipe(QUICKSTART, ["optim.lr_milestones=[10]"])
    with pytest.raises(RecipeError, match="must increase"):
        load_recipe(QUICKSTART, ["optim.lr_milestones=[20, 10]", "optim.lr_factors=[0.5, 0.1]"])
    optim = load_recipe(QUICKSTART, ["optim.lr_milestones=[10, 20]", "optim.lr_factors=[0.5, 0.1]"]).optim
    assert [optim.lr_factor(s) for s in (0, 9, 10, 19, 20, 99)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


@pytest.mark.parametrize("command", ["echo hi", "touch {marker}"])
def test_python_tags_are_refused(tmp_path, capfd, command):
    marker = tmp_path / "executed"
    text = f'name: !!python/object/apply:os.system ["{command.format(marker=marker)}"]\n'
    path = _write(tmp_path, text, "evil.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert "evil.yaml" in str(info.value) and "tags that build objects are not allowed" in str(info.value)
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


def test_invalid_yaml_names_the_line(tmp_path):
    path = _write(tmp_path, "name: x\nseed: [1, 2\n", "broken.yaml")
    with pytest.raises(RecipeError, match=r"broken\.yaml:.*line \d+.*invalid YAML"):
        read_yaml(path)


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found: .*nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")


def test_directory_and_binary_file(tmp_path):
    with pytest.raises(RecipeError, match="cannot read recipe"):
        read_yaml(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(RecipeError, match="binary.yaml"):
        read_yaml(binary)


@pytest.mark.parametrize(("text", "message"), [("- a\n- b\n", "a recipe must be a YAML mapping, got list"),
                                             ("just text\n", "a recipe must be a YAML mapping, got str"),
                                             ("", "the file is empty; a recipe must be a YAML mapping")])
def test_non_mapping_yaml(tmp_path, text, message):
    path = _write(tmp_path, text, "list.yaml")
    with pytest.raises(RecipeError, match=f"list.yaml: {message}"):
        load_recipe(path)


# -- overrides -----------------------------------------------------------------------------
def test_apply_overrides_nested_and_typed():
    data = {"train": {"steps": 10}, "optim": {"batch_size": 64}}
    out = apply_overrides(
        data,
        ["train.steps=3", "optim.betas=[1,2]", "data.options.download=true", "name=run one", "train.device="],
    )
    assert out["train"] == {"steps": 3, "device": ""}
    assert out["optim"] == {"batch_size": 64, "betas": [1, 2]}
    assert out["data"] == {"options": {"download": True}}
    assert out["name"] == "run one"
    assert data == {"train": {"steps": 10}, "optim": {"batch_size": 64}}  # input untouched


def test_apply_overrides_float_with_dot():
    assert apply_overrides({}, ["optim.lr_d=1.0e-4"])["optim"]["lr_d"] == pytest.approx(1e-4)
    assert apply_overrides({}, ["optim.lr_d=0.5"])["optim"]["lr_d"] == 0.5


def test_apply_overrides_exponent_without_dot_is_float():
    value = apply_overrides({}, ["optim.lr_d=1e-4"])["optim"]["lr_d"]
    assert isinstance(value, float) and value == pytest.approx(1e-4)


def test_exponent_override_validates_as_float():
    recipe = load_recipe(QUICKSTART, ["optim.lr_d=1e-4", "losses.rec.weight=2e-1"])
    assert recipe.optim.lr_d == pytest.approx(1e-4) and isinstance(recipe.optim.lr_d, float)
    assert recipe.losses["rec"].weight == pytest.approx(0.2)


def test_override_creates_a_loss_section():
    recipe = load_recipe(QUICKSTART, ["losses.extra.weight=0.5"])
    assert recipe.losses["extra"].weight == 0.5 and recipe.losses["extra"].ramp == 0
    with pytest.raises(RecipeError, match="unknown loss 'extra'"):
        resolve(recipe)


def test_override_through_a_value_is_an_error():
    with pytest.raises(RecipeError, match="train.steps.x: 'train.steps' is a value, not a section"):
        apply_overrides({"train": {"steps": 3}}, ["train.steps.x=1"])
    with pytest.raises(RecipeError, match="'name' is a value"):
        load_recipe(QUICKSTART, ["name.first=1"])


@pytest.mark.parametrize("item", ["steps", "=3", " =3"])
def test_malformed_override(item):
    with pytest.raises(RecipeError, match="expects KEY.PATH=VALUE"):
        apply_overrides({}, [item])


# -- resolving plugin names and options ----------------------------------------------------
def test_resolve_fills_plugin_defaults():
    recipe = resolve(load_recipe(QUICKSTART))
    options = recipe.model.options
    assert options["d_regularizer"] == "noise"
    assert options["width"] == 0.5 and options["bn_momentum"] == 0.01  # from the recipe
    assert options["init"] == "code" and options["noise_std"] == [0.3, 0.5]
    assert recipe.losses["rec"].options == {"reduction": "mean", "code": "encoder"}
    assert recipe.losses["adv"].options == {"form": "nonsaturating"}
    assert recipe.losses["sup"].options == {"augment": []}
    assert resolve(recipe) == recipe  # idempotent


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.dataset=fashion-mnist-maxi", "unknown dataset 'fashion-mnist-maxi': did you mean 'fashion-mnist-mini'?"),
        ("model.network=paper28x", "unknown network 'paper28x': did you mean 'paper28'? available: "),
    ],
)
def test_resolve_unknown_names(override, expected):
    with pytest.raises(RecipeError) as info:
        resolve(load_recipe(QUICKSTART, [override]), source="quick.yaml")
    message = str(info.value)
    assert message.startswith("quick.yaml: ")
    assert expected in message


def test_resolve_unknown_dataset_lists_available():
    with pytest.raises(RecipeError) as info:
        resolve(load_recipe(QUICKSTART, ["data.dataset=zzz"]))
    for name in ("fashion-mnist", "fashion-mnist-mini", "image-folder", "mnist"):
        assert name in str(info.value)


def test_resolve_unknown_loss_lists_available():
    with pytest.raises(RecipeError) as info:
        resolve(load_recipe(QUICKSTART, ["losses.advv.weight=1"]))
    assert "unknown loss 'advv': did you mean 'adv'? available: " in str(info.value)
    for name in ("adv", "info", "rec", "sup"):
        assert name in str(info.value).split("available: ")[1].split(", ")


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ("model.options.widht=0.5", "model.options.widht: unknown key"),
        ("model.options.d_regularizer=gauss", "model.options.d_regularizer: "),
        ("losses.rec.options.reduce=sum", "losses.rec.options.reduce: unknown key"),
        ("data.options.root=/tmp", "data.options.root: unknown key"),
    ],
)
def test_resolve_bad_plugin_options(override, path):
    with pytest.raises(RecipeError) as info:
        resolve(load_recipe(QUICKSTART, [override]))
    assert path in str(info.value)


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_resolves(path):
    recipe = resolve(load_recipe(path), source=str(path))
    assert recipe.name == path.stem
    assert "d_regularizer" in recipe.model.options


# -- relative paths ----------------------------------------------------------------------------
def _folder_recipe(where, **options):
    data = {"name": "f", "data": {"dataset": "image-folder", "options": options},
            "latent": {"variables": {"c1": {"kind": "continuous"}}}, "model": {"network": "paper28"},
            "losses": {"rec": {}}, "evaluate": {"classifier": "judges/item.safetensors"}}
    where.mkdir(parents=True, exist_ok=True)
    path = where / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_relative_paths_in_a_recipe_start_at_its_folder_and_are_kept_absolute(tmp_path, monkeypatch):
    from toolkit.plugins import load_resolved

    path = _folder_recipe(tmp_path / "project", folder="imgs", labels_csv="../shared/labels.csv")
    monkeypatch.chdir(tmp_path)
    recipe = load_resolved(path.relative_to(tmp_path))
    assert recipe.data.options["folder"] == str(tmp_path / "project" / "imgs")
    assert recipe.data.options["labels_csv"] == str(tmp_path / "shared" / "labels.csv")
    assert recipe.evaluate.classifier == str(tmp_path / "project" / "judges" / "item.safetensors")
    monkeypatch.chdir(tmp_path / "project")
    assert load_resolved(path) == recipe  # the same from any working directory
    assert resolve(recipe) == recipe  # stored absolute: a run's recipe resolves to itself


def test_relative_paths_given_with_set_start_at_the_working_directory(tmp_path, monkeypatch):
    from toolkit.plugins import load_resolved

    path = _folder_recipe(tmp_path / "project", folder="imgs")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    recipe = load_resolved(path, ["data.options.folder=mine", "evaluate.classifier=c.safetensors"])
    assert recipe.data.options["folder"] == str(tmp_path / "here" / "mine")
    assert recipe.evaluate.classifier == str(tmp_path / "here" / "c.safetensors")
    whole = load_resolved(path, ["data.options={folder: mine}"])
    assert whole.data.options["folder"] == str(tmp_path / "here" / "mine")


@pytest.mark.parametrize("value", ["~/data/imgs", "$HOME/imgs", "/abs/imgs"])
def test_home_variables_and_absolute_paths_stay_as_written(tmp_path, value):
    from toolkit.plugins import load_resolved

    recipe = load_resolved(_folder_recipe(tmp_path, folder=value))
    assert recipe.data.options["folder"] == value


def test_path_options_are_known_by_type_or_by_declaration():
    from pathlib import Path

    from pydantic import BaseModel, Field

    from toolkit.recipe import PATH, Origin, absolute_paths

    class Options(BaseModel):
        folder: Path
        csv: Path | None = None
        root: str = Field("data", json_schema_extra=PATH)
        name: str = "data"  # not a path

    data = absolute_paths(Options(folder="a", csv="b.csv"), "data.options", Origin(Path("/recipes")))
    assert data == {"folder": "/recipes/a", "csv": "/recipes/b.csv", "root": "/recipes/data", "name": "data"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("latent.variables.c1.prior=empirical", "latent.variables.c1: a continuous variable's prior is uniform or normal"),
        ("latent.variables.item.prior=normal", "latent.variables.item: a categorical variable's prior is uniform, empirical"),
        ("latent.variables.free={kind: categorical, classes: 2, prior: empirical}",
         "latent.variables.free: prior 'empirical' takes the class shares of the label"),
        ("latent.variables.free={kind: categorical, classes: 3, prior: [1, 2]}",
         "latent.variables.free: prior: 2 class weights for 3 classes"),
    ],
)
def test_a_prior_that_does_not_fit_its_variable(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(QUICKSTART, [override])


def test_an_empirical_prior_takes_the_class_shares_of_the_training_labels():
    from toolkit.data import load_dataset
    from toolkit.latent import build_spec

    recipe = load_recipe(QUICKSTART, ["latent.variables.item.prior=empirical"])
    train = load_dataset(recipe, "train")
    spec = build_spec(recipe, train)
    counts = torch.bincount(train.labels["item"][train.labels["item"] >= 0], minlength=10).double()
    assert spec["item"].weights == pytest.approx((counts / counts.sum()).tolist())
    assert build_spec(load_recipe(QUICKSTART), train)["item"].weights is None  # the paper's uniform prior
