"""Attributes derived in the recipe from 0/1 label columns, and the balanced labeled subset."""

import pytest
import torch

from toolkit.data import ImageSet, balanced_subset, derive_attributes, select_labels
from toolkit.errors import RecipeError, ToolkitError
from toolkit.recipe import AttributeConfig, DataConfig, parse_recipe

YES_NO = ["no", "yes"]


def _data(**columns) -> ImageSet:
    n = len(next(iter(columns.values())))
    labels = {name: torch.tensor(values) for name, values in columns.items()}
    return ImageSet(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), labels, {name: list(YES_NO) for name in columns})


def test_one_hot_columns_make_one_categorical_attribute():
    data = _data(Black=[1, 0, 0, 1, 0, -1, 0], Blond=[0, 1, 0, 1, 0, 0, -1], Bald=[0, 0, 1, 0, 0, 0, 1])
    out = derive_attributes(data, {"hair": {"columns": ["Black", "Blond", "Bald"]}})
    # one positive -> its class; several, none or a missing value -> -1
    assert out.labels["hair"].tolist() == [0, 1, 2, -1, -1, -1, -1]
    assert out.classes["hair"] == ["Black", "Blond", "Bald"]
    assert set(out.labels) == {"Black", "Blond", "Bald", "hair"}  # the columns stay
    named = derive_attributes(data, {"hair": AttributeConfig(columns=["Black", "Blond", "Bald"], classes=["k", "y", "b"])})
    assert named.classes["hair"] == ["k", "y", "b"] and torch.equal(named.labels["hair"], out.labels["hair"])


def test_one_column_makes_a_two_class_attribute():
    data = _data(Male=[1, 0, -1, 1])
    out = derive_attributes(data, {"gender": {"columns": "Male", "classes": ["female", "male"]},
                                   "male": {"columns": ["Male"]}})
    assert out.labels["gender"].tolist() == [1, 0, -1, 1] and out.classes["gender"] == ["female", "male"]
    assert out.classes["male"] == ["no", "yes"]
    out.labels["gender"][0] = 0
    assert data.labels["Male"][0] == 1  # the dataset's labels are not changed


def test_unknown_or_non_binary_column_is_a_one_line_error():
    data = _data(Black_Hair=[1, 0], Smiling=[0, 1])
    with pytest.raises(ToolkitError, match=r"^data\.attributes\.hair: the dataset has no attribute 'Blond_Hiar': "
                                           r"did you mean 'Black_Hair'\? available: Black_Hair, Smiling$"):
        derive_attributes(data, {"hair": {"columns": ["Black_Hair", "Blond_Hiar"]}})
    three = ImageSet(data.images, {"kind": torch.tensor([0, 2])}, {"kind": ["a", "b", "c"]})
    with pytest.raises(ToolkitError, match=r"'kind' has 3 classes \(a, b, c\); a column must be a 0/1 attribute"):
        derive_attributes(three, {"k": {"columns": "kind"}})


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ({"columns": ["A", "B"], "classes": ["a"]}, "1 class names for 2 column(s): expected 2"),
        ({"columns": "A", "classes": ["a", "b", "c"]}, "3 class names for 1 column(s): expected 2"),
        ({"columns": ["A", "A"]}, "lists a column twice"),
        ({"columns": []}, "at least one column"),
        ({"columns": "A", "classes": [False, True]}, "YAML reads no/yes/on/off unquoted as booleans"),
        ({"column": "A"}, "data.attributes.x.column: unknown key"),
    ],
)
def test_bad_attribute_declarations_are_recipe_errors(attribute, message):
    recipe = {"name": "r", "data": {"dataset": "d", "attributes": {"x": attribute}},
              "latent": {"variables": {}}, "model": {"network": "n"}, "losses": {}}
    with pytest.raises(RecipeError) as info:
        parse_recipe(recipe)
    assert message in str(info.value)


def test_data_config_defaults_to_no_attributes():
    assert DataConfig(dataset="d").attributes == {}


def test_selection_with_two_attributes_is_exact_on_the_first_and_roughly_balanced_on_the_second():
    g = torch.Generator().manual_seed(0)
    n = 4000
    first = torch.randint(0, 4, (n,), generator=g)
    first[torch.rand(n, generator=g) < 0.2] = -1  # rows without the first label are never chosen
    second = (torch.rand(n, generator=g) < 0.15).long()  # 15% positive
    second[torch.rand(n, generator=g) < 0.1] = -1
    data = ImageSet(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), {"a": first, "b": second},
                    {"a": list("wxyz"), "b": YES_NO})
    labels = select_labels(data, {"a": 4, "b": 2}, 200, seed=3)
    chosen = labels["a"] >= 0
    assert int(chosen.sum()) == 200
    assert torch.bincount(labels["a"][chosen], minlength=4).tolist() == [50, 50, 50, 50]
    assert torch.equal(labels["a"][chosen], first[chosen]) and torch.equal(labels["b"][chosen], second[chosen])
    assert (labels["b"][~chosen] == -1).all()
    b = labels["b"][chosen]
    share = float((b == 1).sum()) / float((b >= 0).sum())
    assert 0.35 < share < 0.65  # a uniform draw would give about 0.15
    again = select_labels(data, {"a": 4, "b": 2}, 200, seed=3)
    assert all(torch.equal(labels[k], again[k]) for k in labels)  # deterministic from the seed
    other = select_labels(data, {"a": 4, "b": 2}, 200, seed=4)
    assert not torch.equal(labels["a"], other["a"])


def test_a_class_too_small_names_the_attribute_and_the_class():
    data = _data(a=[0, 0, 0, 1], b=[0, 1, 0, 1])
    with pytest.raises(ToolkitError, match=r"^data\.labels: attribute 'a': class 'yes' has only 1 labeled images, "
                                           r"2 were asked for \(lower data\.labels\)$"):
        select_labels(data, {"a": 2, "b": 2}, 4, seed=0)


def test_balanced_subset_without_other_attributes_is_unchanged():
    labels = torch.arange(40) % 4
    rows = balanced_subset(labels, 8, 4, seed=1)
    g = torch.Generator().manual_seed(1)
    expected = torch.cat([(labels == k).nonzero().flatten()[torch.randperm(10, generator=g)[:2]] for k in range(4)])
    assert torch.equal(rows, expected.sort().values)
