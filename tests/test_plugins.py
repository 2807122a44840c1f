"""Plugin loading (entry points, in-process plugins, failures) and registries."""

import importlib.metadata
from types import SimpleNamespace

import pytest

import toolkit.networks  # noqa: F401  (it states what a network factory must return, checked in Entry.build)
import toolkit.plugins
from toolkit.errors import RegistryError, ToolkitError
from toolkit.hookspecs import hookimpl
from toolkit.plugins import Plugins, PluginWarning
from toolkit.registry import Entry, Registry


def _factory(*args, options=None, **kwargs):
    return ("built", args, options)


def _network_plugin(*names):
    @hookimpl
    def register_networks(register):
        for name in names:
            register(name, _factory, description=f"test network {name}")

    return SimpleNamespace(register_networks=register_networks)


class LossPlugin:
    """A plugin written as a class, with two hooks."""

    @hookimpl
    def register_losses(self, register):
        register("test-loss", _factory)

    @hookimpl
    def register_datasets(self, register):
        register("test-data", "toolkit.latent:LatentSpec")


BUILTINS = {"TOOLKIT_PLUGINS": "paper,data"}  # exactly the built-in plugins, whatever else is installed


@pytest.fixture
def plugins():
    return Plugins()


# -- entry points --------------------------------------------------------------------------
def test_entry_points_find_the_builtins(plugins):
    plugins.load_entry_points(environ=BUILTINS)
    assert {"paper", "data"} <= set(plugins.info)
    version = importlib.metadata.version("toolkit-gan")
    for name in ("paper", "data"):
        info = plugins.info[name]
        assert info.error is None
        assert info.distribution.replace("_", "-").lower() == "toolkit-gan"
        assert info.version == version
    assert plugins.info["paper"].hooks == ["register_classifiers", "register_losses", "register_networks"]
    assert plugins.info["data"].hooks == ["register_datasets"]
    assert "paper28" in plugins.registry("network")
    assert {"adv", "info", "rec", "sup"} <= set(plugins.registry("loss").names())
    assert {"mnist", "fashion-mnist", "fashion-mnist-mini", "image-folder"} <= set(plugins.registry("dataset").names())
    registered = plugins.info["paper"].registered
    assert "paper28" in registered["network"]
    assert registered["loss"] == ["sup", "rec", "info", "adv", "consistency", "vat", "r1", "mode_seeking"]
    assert "cnn28" in registered["classifier"]
    entry = plugins.registry("network").get("paper28")
    assert entry.plugin == "paper" and entry.kind == "network" and entry.description


def test_entry_points_load_once(plugins):
    plugins.load_entry_points(environ={})
    plugins.load_entry_points(environ={})  # already loaded: skipped, not registered twice
    assert "paper28" in plugins.registry("network")


def test_empty_plugin_list_loads_none(plugins):
    plugins.load_entry_points(environ={"TOOLKIT_PLUGINS": ""})
    assert plugins.info == {}
    assert len(plugins.registry("network")) == 0 and len(plugins.registry("dataset")) == 0


def test_plugin_allow_list(plugins):
    plugins.load_entry_points(environ={"TOOLKIT_PLUGINS": " paper , nonexistent"})
    assert set(plugins.info) == {"paper"}
    assert len(plugins.registry("dataset")) == 0 and "paper28" in plugins.registry("network")


def test_block_list(plugins):
    plugins.load_entry_points(environ={**BUILTINS, "TOOLKIT_BLOCK_PLUGINS": "data"})
    assert "data" not in plugins.info and "paper" in plugins.info
    assert len(plugins.registry("dataset")) == 0
    assert "paper28" in plugins.registry("network")


def test_global_plugins_respect_environment(monkeypatch):
    monkeypatch.setenv("TOOLKIT_BLOCK_PLUGINS", "paper")
    toolkit.plugins.reset()
    try:
        assert "paper" not in toolkit.plugins.get_plugins().info
        assert "mnist" in toolkit.plugins.registry("dataset")
    finally:
        toolkit.plugins.reset()
    monkeypatch.delenv("TOOLKIT_BLOCK_PLUGINS")
    assert "paper28" in toolkit.plugins.registry("network")


# -- in-process plugins --------------------------------------------------------------------
def test_in_process_plugin_registers_and_unregisters(plugins):
    plugins.load_entry_points(environ=BUILTINS)
    assert plugins.register(_network_plugin("tiny"), "mine") is True
    assert {"paper28", "tiny"} <= set(plugins.registry("network").names())
    entry = plugins.registry("network").get("tiny")
    assert entry.plugin == "mine" and entry.description == "test network tiny"
    assert entry.resolve()(1, 2, options=None) == ("built", (1, 2), None)
    with pytest.raises(ToolkitError, match=r"network 'tiny' \(plugin 'mine', \(in-process\)\) returned tuple, expected"):
        entry.build(1, 2)  # what a factory returns is checked where it enters
    info = plugins.info["mine"]
    assert info.distribution == "(in-process)" and info.hooks == ["register_networks"]
    assert info.registered == {"network": ["tiny"]}

    plugins.unregister("mine")
    assert "tiny" not in plugins.registry("network") and "paper28" in plugins.registry("network")
    assert "mine" not in plugins.info
    plugins.unregister("mine")  # twice is harmless


def test_class_plugin_with_several_hooks(plugins):
    assert plugins.register(LossPlugin(), "cls") is True
    assert plugins.registry("loss").names() == ["test-loss"]
    entry = plugins.registry("dataset").get("test-data")
    assert entry.resolve().__name__ == "LatentSpec"
    assert plugins.info["cls"].hooks == ["register_datasets", "register_losses"]


def test_failing_hook_is_reported_and_others_still_work(plugins):
    @hookimpl
    def register_networks(register):
        raise RuntimeError("boom")

    plugins.register(_network_plugin("good"), "good")
    plugins.register(SimpleNamespace(register_networks=register_networks), "broken")
    plugins.register(_network_plugin("also-good"), "later")
    with pytest.warns(PluginWarning, match="plugin 'broken' skipped: register_networks raised RuntimeError: boom"):
        names = plugins.registry("network").names()
    assert names == ["also-good", "good"]
    assert plugins.info["broken"].error == "register_networks raised RuntimeError: boom"
    assert plugins.info["good"].error is None and plugins.info["later"].error is None


def test_failing_hook_registers_nothing(plugins):
    @hookimpl
    def register_networks(register):
        register("half", _factory)
        raise RuntimeError("boom")

    plugins.register(SimpleNamespace(register_networks=register_networks), "partial")
    with pytest.warns(PluginWarning):
        first = plugins.registry("network").names()
    plugins.register(_network_plugin("other"), "other")  # forces a new collection
    second = plugins.registry("network").names()
    assert first == [] and second == ["other"]


def test_failing_entry_point_import_is_reported(plugins, monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "toolkit_no_such_module_xyz", "toolkit")
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        return list(real(**kwargs)) + [broken]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with pytest.warns(PluginWarning, match="plugin 'broken' skipped: failed to import toolkit_no_such_module_xyz"):
        plugins.load_entry_points(environ={})
    assert "ModuleNotFoundError" in plugins.info["broken"].error
    assert "paper28" in plugins.registry("network")


def test_unknown_hook_is_rejected(plugins):
    @hookimpl
    def register_netwroks(register):
        register("typo", _factory)

    with pytest.warns(PluginWarning, match="register_netwroks"):
        ok = plugins.register(SimpleNamespace(register_netwroks=register_netwroks), "typo")
    assert ok is False
    error = plugins.info["typo"].error
    assert "unknown hook(s) register_netwroks" in error
    assert "register_networks" in error  # the known hooks are listed
    assert plugins.pm.get_plugin("typo") is None
    assert len(plugins.registry("network")) == 0


def test_same_name_from_two_plugins(plugins):
    plugins.register(_network_plugin("shared"), "first")
    plugins.register(_network_plugin("shared"), "second")
    with pytest.warns(PluginWarning) as caught:
        registry = plugins.registry("network")
    assert registry.get("shared").plugin == "first"  # the first is kept, the second reported, nothing fails
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("plugin 'second' ((in-process)): network 'shared' skipped: plugin 'first' ((in-process)) registers")
    assert plugins.info["second"].skipped == ["network 'shared' skipped: plugin 'first' ((in-process)) registers that name"]
    assert plugins.info["second"].error is None
    plugins.unregister("second")
    assert plugins.registry("network").get("shared").plugin == "first"


def test_rejected_duplicate_plugin_name_leaves_first_plugin_alone(plugins):
    plugins.register(_network_plugin("a"), "same")
    with pytest.warns(PluginWarning, match="already registered"):
        assert plugins.register(_network_plugin("b"), "same") is False
    assert plugins.registry("network").names() == ["a"]


def test_unknown_hook_not_listed_as_known(plugins):
    with pytest.warns(PluginWarning):
        plugins.register(SimpleNamespace(register_netwroks=hookimpl(lambda register: None)), "typo")
    known = plugins.info["typo"].error.split("(known: ")[1]
    assert "register_netwroks" not in known


# -- registry and entries ------------------------------------------------------------------
def test_registry_miss_message():
    registry = Registry("network")
    registry.add(Entry("network", "paper28", _factory, plugin="paper"))
    with pytest.raises(RegistryError) as info:
        registry.get("paper28x")
    assert str(info.value).startswith("unknown network 'paper28x': did you mean 'paper28'? available: ")
    assert "paper28" in str(info.value).split("available: ")[1].split(", ")
    with pytest.raises(RegistryError, match="^unknown network 'zzz': available: paper28$"):
        registry.get("zzz")
    with pytest.raises(RegistryError, match="^unknown loss 'x': none available$"):
        Registry("loss").get("x")


def test_registry_duplicate_and_listing():
    registry = Registry("loss")
    registry.add(Entry("loss", "b", _factory, plugin="p1"))
    registry.add(Entry("loss", "a", _factory, plugin="p1"))
    assert registry.names() == ["a", "b"] and [e.name for e in registry.entries()] == ["a", "b"]
    assert "a" in registry and "c" not in registry and len(registry) == 2
    with pytest.raises(RegistryError, match="loss 'a' is registered twice: by plugin 'p1' and by plugin 'p2'"):
        registry.add(Entry("loss", "a", _factory, plugin="p2"))


def test_global_registry_miss_message():
    with pytest.raises(RegistryError) as info:
        toolkit.plugins.registry("network").get("paper28x")
    assert str(info.value).startswith("unknown network 'paper28x': did you mean 'paper28'? available: ")
    assert "paper28" in str(info.value).split("available: ")[1].split(", ")


def test_entry_resolves_factory_string_lazily():
    entry = Entry("network", "n", "toolkit.latent:LatentSpec.from_dict", plugin="p")
    assert isinstance(entry.factory, str)
    from toolkit.latent import LatentSpec

    assert entry.resolve() == LatentSpec.from_dict
    assert entry.factory == LatentSpec.from_dict  # cached


@pytest.mark.parametrize(
    "factory", ["toolkit_no_such_module_xyz:build", "toolkit.latent:NoSuchThing", "toolkit.latent", "toolkit.latent:"]
)
def test_entry_bad_factory_string(factory):
    entry = Entry("network", "n", factory, plugin="p")
    with pytest.raises(ToolkitError) as info:
        entry.build()
    message = str(info.value)
    assert "network 'n' (plugin p) cannot be loaded from" in message and factory in message


@pytest.mark.parametrize("factory", [":build", ".relative:build"])
def test_entry_bad_module_part(factory):
    with pytest.raises(ToolkitError):
        Entry("network", "n", factory, plugin="p").resolve()


def test_entry_options():
    from pydantic import BaseModel, ConfigDict

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 3

    entry = Entry("widget", "l", _factory, options=Options)  # a kind whose results are not checked
    assert entry.build(options={})[2] == Options()
    assert entry.build(options={"size": 5})[2].size == 5
    with pytest.raises(ToolkitError, match=r"^losses\.l\.options\.sise: unknown key"):
        entry.build(options={"sise": 5}, where="losses.l.options")
    bare = Entry("widget", "bare", _factory)
    assert bare.build(options={})[2] == {}
    with pytest.raises(ToolkitError, match=r"widget 'bare' takes no options \(got \['x'\]\)"):
        bare.build(options={"x": 1})
