"""toolkit.testing: in-process plugins, the synthetic dataset, smoke tests that catch broken plugins."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import toolkit_paper
from toolkit.errors import PluginError, RegistryError, ToolkitError
from toolkit.hookspecs import hookimpl
from toolkit.networks import build_networks
from toolkit.plugins import PluginWarning, get_plugins, registry
from toolkit.testing import (
    SyntheticPlugin,
    linear_networks,
    load_synthetic,
    plugin_registered,
    smoke_test_loss,
    smoke_test_network,
    smoke_test_recipe,
    synthetic_dataset,
    tiny_spec,
)


def network_plugin(name, factory, **extra):
    @hookimpl
    def register_networks(register):
        register(name, factory, description=f"test network {name}", **extra)

    return SimpleNamespace(register_networks=register_networks)


def loss_plugin(name, term):
    @hookimpl
    def register_losses(register):
        register(name, lambda spec, options=None: term)

    return SimpleNamespace(register_losses=register_losses)


def linear(spec, image_shape, options=None):
    return linear_networks(spec, image_shape)


# -- registering plugins in-process --------------------------------------------------------
def test_module_import_is_cheap():
    code = "import sys, toolkit.testing; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_pytest_loads_the_helpers_through_the_entry_point(request):
    import toolkit.testing

    assert request.config.pluginmanager.get_plugin("toolkit") is toolkit.testing


def test_plugin_registered_adds_then_removes():
    with plugin_registered(network_plugin("lin", linear), "mine") as plugins:
        assert plugins is get_plugins()
        entry = registry("network").get("lin")
        assert entry.plugin == "mine" and plugins.info["mine"].distribution == "(in-process)"
    assert "lin" not in registry("network") and "mine" not in get_plugins().info
    assert "paper28" in registry("network")


def test_register_plugin_fixture(register_plugin):
    register_plugin(network_plugin("lin", linear), "mine")
    register_plugin(SyntheticPlugin(), "synthetic")
    assert "lin" in registry("network") and "synthetic" in registry("dataset")


def test_register_plugin_fixture_cleaned_up():
    assert "lin" not in registry("network") and "synthetic" not in registry("dataset")


def test_an_already_registered_plugin_is_left_alone():
    with plugin_registered(toolkit_paper, "paper-again"):
        assert registry("network").get("paper28").plugin == "paper"
    assert registry("network").get("paper28").plugin == "paper"
    assert "paper-again" not in get_plugins().info


def test_plugin_name_taken():
    with pytest.raises(ToolkitError, match="plugin 'paper' cannot be registered: another plugin of that name"):
        with plugin_registered(network_plugin("lin", linear), "paper"):
            pass
    assert registry("network").get("paper28").plugin == "paper"


def test_plugin_that_would_be_skipped_raises():
    with pytest.raises(ToolkitError, match=r"plugin 'typo' was skipped: implements unknown hook\(s\) register_netwroks"):
        with plugin_registered(SimpleNamespace(register_netwroks=hookimpl(lambda register: None)), "typo"):
            pass

    @hookimpl
    def register_losses(register):
        raise RuntimeError("boom")

    with pytest.raises(ToolkitError, match="plugin 'broken' was skipped: register_losses raised RuntimeError: boom"):
        with plugin_registered(SimpleNamespace(register_losses=register_losses), "broken"):
            pass
    assert "typo" not in get_plugins().info and "broken" not in get_plugins().info
    assert "sup" in registry("loss")


def test_plugin_registering_a_taken_name_raises_and_leaves_the_first():
    with pytest.raises(RegistryError, match=r"plugin 'copycat': network 'paper28' skipped: plugin 'paper' \(toolkit-gan"):
        with plugin_registered(network_plugin("paper28", linear), "copycat"):
            pass
    assert registry("network").get("paper28").plugin == "paper"


def test_register_commands_hook_adds_a_command():
    import typer
    from typer.testing import CliRunner

    @hookimpl
    def register_commands(cli):
        @cli.command("hello")
        def hello(name: str = "world"):
            typer.echo(f"hello {name}")

    app = typer.Typer()
    app.command("noop")(lambda: None)  # two commands, so typer keeps the command names
    with plugin_registered(SimpleNamespace(register_commands=register_commands), "greeter") as plugins:
        assert plugins.info["greeter"].hooks == ["register_commands"]
        plugins.add_commands(app)
    result = CliRunner().invoke(app, ["hello", "--name", "plugin"])
    assert result.exit_code == 0 and result.output == "hello plugin\n"


def test_failing_register_commands_is_reported():
    @hookimpl
    def register_commands(cli):
        raise RuntimeError("no cli for you")

    import typer

    with plugin_registered(SimpleNamespace(register_commands=register_commands), "rude") as plugins:
        with pytest.warns(PluginWarning, match="register_commands raised RuntimeError: no cli for you"):
            plugins.add_commands(typer.Typer())
        assert "no cli for you" in plugins.info["rude"].error


# -- the synthetic dataset -----------------------------------------------------------------
def test_synthetic_dataset():
    data = synthetic_dataset(n=40, classes=4, seed=1)
    assert data.images.dtype == torch.uint8 and data.shape == (1, 28, 28) and len(data) == 40
    assert data.classes == {"shape": ["bar0", "bar1", "bar2", "bar3"]}
    labels = data.labels["shape"]
    assert torch.bincount(labels).tolist() == [10, 10, 10, 10]
    # the bar's column mass lies in the class's band
    columns = data.images.float().sum(dim=(1, 2))  # (n, W)
    centre = (columns * torch.arange(28)).sum(1) / columns.sum(1)
    assert torch.equal((centre // 7).long(), labels)
    assert torch.equal(synthetic_dataset(n=40, seed=1).images, data.images)
    assert not torch.equal(synthetic_dataset(n=40, seed=2).images, data.images)
    assert synthetic_dataset(n=5, size=16, channels=3, classes=2).shape == (3, 16, 16)
    with pytest.raises(ToolkitError, match="8 classes need images of at least 16 pixels"):
        synthetic_dataset(size=12, classes=8)


def test_synthetic_registered_as_a_dataset(register_plugin):
    register_plugin(SyntheticPlugin(), "synthetic")
    entry = registry("dataset").get("synthetic")
    assert len(entry.build(options={"n": 40}, split="train")) == 40
    assert len(entry.build(options={"n": 40}, split="test")) == 10
    assert len(load_synthetic(None, "train")) == 200
    with pytest.raises(ToolkitError, match="splits train and test, not 'valid'"):
        entry.build(options={}, split="valid")
    with pytest.raises(ToolkitError, match=r"^data\.options\.nn: unknown key"):
        entry.build(options={"nn": 3}, split="train", where="data.options")


def test_a_recipe_on_the_synthetic_dataset_trains_and_translates(register_plugin, tmp_path):
    register_plugin(SyntheticPlugin(), "synthetic")
    recipe = {
        "name": "synthetic", "data": {"dataset": "synthetic", "options": {"n": 40}, "labels": 8},
        "latent": {"u": {"size": 3}, "variables": {"shape": {"kind": "categorical", "label": "shape"}}},
        "model": {"network": "paper28", "options": {"width": 0.125}},
        "losses": {"sup": {}, "rec": {}, "info": {}, "adv": {}}, "optim": {"batch_size": 4},
    }
    model = smoke_test_recipe(recipe, tmp_path / "run", steps=2)
    assert model.step == 2 and model.spec.names == ["shape"] and model.spec["shape"].classes[0] == "bar0"
    assert (tmp_path / "run" / "checkpoints" / "step-000002.safetensors").is_file()


# -- smoke tests: networks -----------------------------------------------------------------
def test_smoke_test_network_passes_a_good_network(register_plugin):
    register_plugin(network_plugin("lin", linear), "mine")
    nets = smoke_test_network("lin")
    assert nets.generator(tiny_spec().sample(2)).shape == (2, 1, 28, 28)
    assert all(p.grad is None for p in nets.parameters())


def test_smoke_test_network_uses_the_declared_image_shape(register_plugin):
    register_plugin(network_plugin("lin-rgb", linear, image_shape=(3, 16, 16)), "mine")
    nets = smoke_test_network("lin-rgb")
    assert nets.generator(tiny_spec().sample(2)).shape == (2, 3, 16, 16)
    assert smoke_test_network("lin-rgb", image_shape=(1, 8, 8)).generator[0].out_features == 64


def _broken(change):
    def factory(spec, image_shape, options=None):
        nets = linear_networks(spec, image_shape)
        change(nets, spec)
        return nets

    return factory


class _Scaled(nn.Module):
    def __init__(self, module, scale, shift=0.0):
        super().__init__()
        self.module, self.scale, self.shift = module, scale, shift

    def forward(self, *args):
        return self.module(*args) * self.scale + self.shift


class _RandomOffset(nn.Module):
    """State that is not in the state dict: another build generates other images."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.register_buffer("offset", torch.rand(1) * 0.1, persistent=False)

    def forward(self, z):
        return (self.module(z) * 0.8 + self.offset).clamp(0, 1)


BROKEN_NETWORKS = {
    "no sigmoid": (lambda n, s: setattr(n, "generator", _Scaled(n.generator, 4.0, -2.0)), r"G\(z\) must be in \[0, 1\]"),
    "u without tanh": (lambda n, s: setattr(n, "encoder", _Scaled(n.encoder, 1.0, 5.0)), r"u part of E\(x\) must be in \[-1, 1\]"),
    "wrong code size": (lambda n, s: setattr(n, "encoder", nn.Sequential(nn.Flatten(), nn.Linear(784, s.dim + 1))),
                        r"E\(x\) has shape \(4, 11\), expected \(4, 10\)"),
    "D gives no logit": (lambda n, s: setattr(n.discriminator, "net", nn.Linear(784 + s.dim, 2)), r"D\(x, E\(x\)\) has shape \(4, 2\)"),
    "unused parameter": (lambda n, s: n.discriminator.register_parameter("unused", nn.Parameter(torch.zeros(3))),
                         r"no gradient reaches discriminator parameters \['unused'\]"),
    "frozen generator": (lambda n, s: n.generator.requires_grad_(False), "the generator has no trainable parameters"),
    "state outside the state dict": (lambda n, s: setattr(n, "generator", _RandomOffset(n.generator)), "generates other images"),
}


@pytest.mark.parametrize("case", BROKEN_NETWORKS)
def test_smoke_test_network_names_what_is_broken(register_plugin, case):
    change, message = BROKEN_NETWORKS[case]
    register_plugin(network_plugin("bad", _broken(change)), "bad")
    with pytest.raises(AssertionError, match=message):
        smoke_test_network("bad")


def test_smoke_test_network_factory_errors_pass_through(register_plugin):
    register_plugin(network_plugin("tuple", lambda spec, image_shape, options=None: (1, 2, 3)), "bad")
    with pytest.raises(PluginError,
                       match=r"network 'tuple' \(plugin 'bad', \(in-process\)\) returned tuple, expected toolkit.networks.Networks"):
        smoke_test_network("tuple")
    with pytest.raises(ToolkitError, match=r"model\.options\.widht: unknown key"):
        smoke_test_network("paper28", {"widht": 1})


def test_smoke_test_network_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    smoke_test_network("paper28", {"width": 0.125})
    assert torch.equal(torch.rand(3), expected)


# -- smoke tests: losses -------------------------------------------------------------------
def test_smoke_test_loss_returns_the_parts():
    parts = smoke_test_loss("adv")
    assert set(parts) == {"ge", "d"} and all(v.dim() == 0 for v in parts.values())
    assert smoke_test_loss("rec", {"reduction": "sum"})["ge"] > smoke_test_loss("rec")["ge"]
    assert smoke_test_loss("info", {"translations": True})["ge"] > smoke_test_loss("info")["ge"]


def _labeled_mean(out):
    labels = out.labels["shape"]
    known = labels >= 0
    return {"ge": torch.nn.functional.cross_entropy(out.raw_real[known][:, 3:7], labels[known])}


BROKEN_LOSSES = {
    "not a dict": (lambda out: out.x_rec.mean(), "must return a dict"),
    "empty dict": (lambda out: {}, "must return a dict"),
    "unknown part": (lambda out: {"g": out.x_rec.mean()}, r"unknown part\(s\) 'g' \(allowed: 'ge' for G and E, 'd' for D\)"),
    "not a scalar": (lambda out: {"ge": (out.x_rec - out.x_real).abs()},
                     r"part 'ge' must be a scalar \(shape \(\)\), got shape \(4, 1, 28, 28\)"),
    "constant": (lambda out: {"ge": torch.tensor(1.0)}, "part 'ge' does not depend on G and E"),
    "D part on detached logits": (lambda out: {"d": out.d_real.detach().mean()}, "part 'd' does not depend on D"),
    "nan": (lambda out: {"ge": out.x_rec.mean() * float("nan")}, "part 'ge' is not finite"),
    "mean over an empty batch": (_labeled_mean, r"\(no labels\) part 'ge' is not finite"),
}


@pytest.mark.parametrize("case", BROKEN_LOSSES)
def test_smoke_test_loss_names_what_is_broken(register_plugin, case):
    term, message = BROKEN_LOSSES[case]
    register_plugin(loss_plugin("bad", term), "bad")
    with pytest.raises(AssertionError, match=message):
        smoke_test_loss("bad")


def test_smoke_test_loss_checks_options():
    with pytest.raises(ToolkitError, match=r"losses\.rec\.options\.reduction"):
        smoke_test_loss("rec", {"reduction": "max"})


def test_linear_networks_build_through_the_registry(register_plugin):
    register_plugin(network_plugin("lin", linear), "mine")
    nets = build_networks("lin", tiny_spec(), (1, 28, 28))
    assert nets.discriminator(torch.rand(2, 1, 28, 28), tiny_spec().sample(2)).shape == (2, 1)
