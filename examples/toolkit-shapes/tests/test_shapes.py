"""The example plugin: found through its entry point, honours the contracts, trains and translates."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import toolkit_shapes
from toolkit.errors import ToolkitError
from toolkit.networks import build_networks
from toolkit.plugins import Plugins, get_plugins, registry
from toolkit.testing import plugin_registered, smoke_test_loss, smoke_test_network, smoke_test_recipe, tiny_spec

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "shapes.yaml"
SMALL = ["data.options.train_size=120", "data.options.test_size=30", "data.labels=30", "optim.batch_size=8",
         "model.options.hidden=16"]


@pytest.fixture(autouse=True, scope="module")
def shapes_plugin():
    """The plugin, registered in-process unless its entry point loaded it already."""
    with plugin_registered(toolkit_shapes, "shapes"):
        yield


def toolkit(*args, cwd):
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_entry_point_loads_the_plugin():
    assert "mlp28" in registry("network")  # collects what each plugin registered
    info = get_plugins().info["shapes"]
    assert info.error is None and info.distribution.replace("_", "-") == "toolkit-shapes"
    assert info.registered == {"dataset": ["shapes"], "network": ["mlp28"], "loss": ["l1-rec"]}


def test_hooks_are_spelled_right():
    plugins = Plugins()
    assert plugins.register(toolkit_shapes, "fresh")
    assert plugins.info["fresh"].hooks == ["register_commands", "register_datasets", "register_losses", "register_networks"]


# -- dataset -------------------------------------------------------------------------------
def test_dataset_has_shape_and_size_with_partial_labels():
    entry = registry("dataset").get("shapes")
    train = entry.build(options={"train_size": 60, "test_size": 12}, split="train")
    assert train.images.dtype == torch.uint8 and train.shape == (1, 28, 28) and len(train) == 60
    assert train.classes == {"shape": ["circle", "square", "triangle"], "size": ["small", "large"]}
    for name, k in (("shape", 3), ("size", 2)):
        labels = train.labels[name]
        assert int((labels == -1).sum()) == 18  # 30% of 60, per attribute
        assert set(labels.tolist()) == {-1, *range(k)}
    assert not torch.equal(train.labels["shape"] == -1, train.labels["size"] == -1)  # missing independently
    test = entry.build(options={"train_size": 60, "test_size": 12}, split="test")
    assert len(test) == 12 and all((lab >= 0).all() for lab in test.labels.values())
    assert torch.equal(entry.build(options={"train_size": 60}, split="train").images, train.images)
    assert not torch.equal(entry.build(options={"train_size": 60, "seed": 1}, split="train").images, train.images)


def test_dataset_errors():
    entry = registry("dataset").get("shapes")
    with pytest.raises(ToolkitError, match="splits train and test, not 'valid'"):
        entry.build(options={}, split="valid")
    with pytest.raises(ToolkitError, match=r"^data\.options\.train_sise: unknown key"):
        entry.build(options={"train_sise": 10}, split="train", where="data.options")


def test_shapes_are_drawn_as_named():
    from toolkit_shapes.data import render

    g = torch.Generator().manual_seed(0)
    shape, size = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 1, 1, 0, 0, 0])
    images = render(shape, size, g, jitter=0)
    assert images.shape == (6, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    lit = (images > 0.3).flatten(1).float().sum(1)
    assert (lit[:3] > lit[3:]).all()  # large shapes cover more pixels than small ones
    square, triangle = images[1, 0] > 0.3, images[2, 0] > 0.3
    rows = lambda mask: mask.sum(1)[mask.sum(1) > 0].float()  # noqa: E731  (lit pixels per row)
    assert rows(square).std() < 1 and rows(triangle).std() > 2  # square rows are equal, a triangle widens


# -- network and loss ----------------------------------------------------------------------
def test_mlp28_passes_the_network_smoke_test():
    smoke_test_network("mlp28")
    smoke_test_network("mlp28", {"hidden": 8, "layers": 1, "dropout": 0, "batchnorm": False})
    smoke_test_network("mlp28", {"hidden": 8}, image_shape=(3, 28, 28))


def test_mlp28_refuses_other_sizes_and_bad_options():
    with pytest.raises(ToolkitError, match="network 'mlp28' expects 28x28 images, the data has 32x32"):
        build_networks("mlp28", tiny_spec(), (1, 32, 32))
    with pytest.raises(ToolkitError, match=r"model\.options\.hidden"):
        build_networks("mlp28", tiny_spec(), (1, 28, 28), {"hidden": 0})


def test_l1_rec_passes_the_loss_smoke_test():
    mean = smoke_test_loss("l1-rec")["ge"]
    total = smoke_test_loss("l1-rec", {"reduction": "sum"})["ge"]
    assert torch.allclose(total, mean * 28 * 28)


# -- the recipe and the command line -------------------------------------------------------
def test_draw_shape_errors(tmp_path):
    from toolkit_shapes.commands import draw_shape

    with pytest.raises(ToolkitError, match="unknown shape 'circel': did you mean 'circle'?"):
        draw_shape("circel", "large", 0, tmp_path / "x.png")
    with pytest.raises(ToolkitError, match="unknown size 'huge': available: small, large"):
        draw_shape("circle", "huge", 0, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_recipe_trains_and_translates(tmp_path):
    model = smoke_test_recipe(RECIPE, tmp_path, overrides=SMALL, steps=2)
    assert model.spec.names == ["shape", "size", "c1"]
    assert model.spec["shape"].classes == ["circle", "square", "triangle"]
    assert model.recipe.losses["l1-rec"].weight == 5


def test_cli_lists_the_plugin_draws_trains_and_translates(tmp_path):
    done = toolkit("plugins", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout) if r["name"] == "shapes"]
    assert row["distribution"] == "toolkit-shapes" and row["error"] is None

    done = toolkit("draw-shape", "circle", "--size", "large", "-o", "circle.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "circle.png").size == (28, 28)

    sets = [arg for s in SMALL + ["train.steps=2"] for arg in ("--set", s)]
    done = toolkit("train", RECIPE, *sets, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = toolkit("translate", "--set", "shape=square", "circle.png", "-o", "t.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "t.png").size == (2 * 30 + 2, 30 + 2)
