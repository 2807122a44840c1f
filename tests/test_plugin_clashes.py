"""One bad plugin never takes the others down, and plugin authors can see what is registered
(issue 14, items 8 and 13): a clashing registration or command is reported and skipped;
``toolkit plugins`` shows descriptions, ``toolkit plugins show`` one entry's options."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from toolkit.hookspecs import hookimpl
from toolkit.plugins import PluginInfo, Plugins, PluginWarning

ROOT = Path(__file__).resolve().parents[1]

EVIL = '''
from pydantic import BaseModel, ConfigDict, Field
from toolkit.hookspecs import hookimpl


class HelloOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loud: bool = Field(False, description="shout it")


@hookimpl
def register_datasets(register):
    register("mnist", "evilplug:nothing", description="a copy of MNIST")       # a built-in name
    register("evil-bars", "toolkit.testing:load_synthetic", description="bars, again")


@hookimpl
def register_losses(register):
    register("hello", "evilplug:nothing", options=HelloOptions, description="says hello")


@hookimpl
def register_commands(cli):
    import typer

    @cli.command("generate")                       # a built-in command name
    def generate():
        typer.echo("the evil generate")

    @cli.command("evil-hello")
    def evil_hello():
        typer.echo("hello from evil")
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An installed third-party distribution 'toolkit-evil 1.0' with entry point 'evil' (no pip needed)."""
    site = tmp_path_factory.mktemp("site")
    (site / "evilplug.py").write_text(EVIL)
    dist = site / "toolkit_evil-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toolkit-evil\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[toolkit]\nevil = evilplug\n")
    return site


def toolkit(site, *args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


def test_a_plugin_registering_a_built_in_name_is_reported_and_skipped(site):
    done = toolkit(site, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    clash = [w for w in warnings if "dataset 'mnist'" in w]
    assert len(clash) == 1, done.stderr
    assert "plugin 'evil' (toolkit-evil 1.0): dataset 'mnist' skipped: plugin 'data' (toolkit-gan" in clash[0]
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["evil"]["error"] is None
    assert rows["evil"]["registered"] == {"dataset": ["evil-bars"], "loss": ["hello"]}
    assert any("dataset 'mnist' skipped" in line for line in rows["evil"]["skipped"])
    assert "mnist" in rows["data"]["registered"]["dataset"]
    assert rows["evil"]["descriptions"]["loss"] == {"hello": "says hello"}


def test_a_plugin_command_named_like_a_built_in_is_reported_and_the_built_in_kept(site, tmp_path):
    done = toolkit(site, "generate", "--help")
    assert done.returncode == 0, done.stderr
    assert "Sample images with chosen characteristics" in done.stdout  # the built-in
    assert "warning: plugin 'evil' (toolkit-evil 1.0): command 'generate' skipped: the toolkit itself has a command" \
        in done.stderr
    done = toolkit(site, "evil-hello")
    assert done.returncode == 0 and done.stdout == "hello from evil\n", done.stderr
    done = toolkit(site, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    (evil,) = [row for row in json.loads(done.stdout) if row["name"] == "evil"]
    assert evil["commands"] == ["evil-hello"]
    assert "command 'generate' skipped: the toolkit itself has a command of that name" in evil["skipped"]
    done = toolkit(site, "plugins")
    assert done.returncode == 0 and "evil-hello" in done.stdout and "skipped" in done.stdout, done.stderr


def test_everything_else_keeps_working_with_the_bad_plugin(site, tmp_path):
    done = toolkit(site, "recipe", "validate", ROOT / "recipes" / "quickstart.yaml", "--no-data")
    assert done.returncode == 0, done.stderr
    done = toolkit(site, "plugins", "show", "dataset", "mnist")
    assert done.returncode == 0 and "from plugin 'data' (toolkit-gan" in done.stdout, done.stderr
    done = toolkit(site, "plugins", "show", "hello")
    assert done.returncode == 0 and "loss hello from plugin 'evil' (toolkit-evil 1.0)" in done.stdout
    assert "loud" in done.stdout and "shout it" in done.stdout


def _network(name):
    @hookimpl
    def register_networks(register):
        register(name, lambda spec, shape, options=None: None, description=f"net {name}")

    return SimpleNamespace(register_networks=register_networks)


def test_the_built_in_wins_whatever_the_loading_order():
    plugins = Plugins()
    plugins.register(_network("paper28"), "early", info=PluginInfo("early", "toolkit-early", "2.0"))
    plugins.register(_network("paper28"), "paper", info=PluginInfo("paper", "toolkit-gan", "0.1.0"))
    with pytest.warns(PluginWarning, match=r"plugin 'early' \(toolkit-early 2.0\): network 'paper28' skipped: "
                                           r"plugin 'paper' \(toolkit-gan 0.1.0\) registers that name"):
        registry = plugins.registry("network")
    assert registry.get("paper28").plugin == "paper"
    assert plugins.info["early"].registered == {} and plugins.info["paper"].registered == {"network": ["paper28"]}


@pytest.mark.parametrize("args, problem", [
    ((3, "m:f"), "the name must be a non-empty string"),
    (("x", None), "the factory must be a callable or a 'module:attribute' string"),
    (("x", "m:f", dict), "options must be a pydantic model class"),
])
def test_bad_register_arguments_skip_the_plugin_only(args, problem):
    @hookimpl
    def register_losses(register):
        register(*args)

    plugins = Plugins()
    plugins.register(_network("ok-net"), "good")
    plugins.register(SimpleNamespace(register_losses=register_losses), "bad")
    with pytest.warns(PluginWarning, match=problem):
        assert len(plugins.registry("loss")) == 0
    assert "ok-net" in plugins.registry("network")
    assert problem in plugins.info["bad"].error


def test_command_clashes_between_plugins_keep_the_first():
    def commands(name):
        @hookimpl
        def register_commands(cli):
            cli.command(name)(lambda: None)

        return SimpleNamespace(register_commands=register_commands)

    app = typer.Typer()
    app.command("generate")(lambda: None)
    plugins = Plugins()
    plugins.register(commands("shared"), "one", info=PluginInfo("one", "dist-one", "1"))
    plugins.register(commands("shared"), "two", info=PluginInfo("two", "dist-two", "1"))
    plugins.register(commands("generate"), "three", info=PluginInfo("three", "dist-three", "1"))
    with pytest.warns(PluginWarning) as caught:
        plugins.add_commands(app)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "plugin 'three' (dist-three 1): command 'generate' skipped: the toolkit itself has a command of that name",
        "plugin 'two' (dist-two 1): command 'shared' skipped: plugin 'one' (dist-one 1) has a command of that name",
    ]
    assert [c.name for c in app.registered_commands] == ["generate", "shared"]
    assert plugins.info["one"].commands == ["shared"]


def test_commands_added_again_to_the_same_app_are_neither_doubled_nor_called_clashes():
    @hookimpl
    def register_commands(cli):
        cli.command("draw-shape")(lambda: None)

    app = typer.Typer()
    app.command("generate")(lambda: None)
    plugins = Plugins()
    plugins.register(SimpleNamespace(register_commands=register_commands), "shapes",
                     info=PluginInfo("shapes", "toolkit-shapes", "1"))
    plugins.add_commands(app)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)  # main() run a second time in one process
        plugins.add_commands(app)
    assert [c.name for c in app.registered_commands] == ["generate", "draw-shape"]
    assert plugins.info["shapes"].commands == ["draw-shape"] and plugins.info["shapes"].skipped == []


def test_an_entry_point_name_from_two_distributions_is_reported(monkeypatch):
    import importlib.metadata

    class Dist:
        def __init__(self, name):
            self.name, self.version = name, "1"

    class EP:
        def __init__(self, name, value, dist):
            self.name, self.value, self.dist = name, value, Dist(dist)

        def load(self):
            return SimpleNamespace()

    eps = [EP("shapes", "a", "toolkit-shapes"), EP("shapes", "b", "toolkit-other-shapes")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    plugins = Plugins()
    with pytest.warns(PluginWarning, match=r"plugin 'shapes' of toolkit-other-shapes 1 skipped: plugin 'shapes' "
                                           r"\(toolkit-shapes 1\) has the same entry-point name"):
        plugins.load_entry_points(environ={})
    assert plugins.info["shapes"].distribution == "toolkit-shapes"


def test_plugins_show_describes_an_entry_and_its_options():
    from typer.testing import CliRunner

    import toolkit.cli

    toolkit.cli._register_commands()
    runner = CliRunner()
    result = runner.invoke(toolkit.cli.app, ["plugins", "show", "loss", "rec", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["plugin"] == "paper" and data["distribution"] == "toolkit-gan" and data["description"]
    (reduction,) = [o for o in data["options"] if o["name"] == "reduction"]
    assert reduction["type"] == "one of 'mean', 'sum'" and reduction["default"] == "mean" and reduction["description"]
    assert data["options_key"] == "losses.rec.options" and "properties" in data["schema"]
    result = runner.invoke(toolkit.cli.app, ["plugins", "show", "image-folder"])
    assert result.exit_code == 0 and "(required)" in result.output and ">= 8, <= 512" in result.output
    result = runner.invoke(toolkit.cli.app, ["plugins"])
    assert result.exit_code == 0 and "your own images: a folder" in result.output  # descriptions are shown


@pytest.fixture(scope="module")
def raising_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("raising")
    (site / "raiseplug.py").write_text(textwrap.dedent('''
        from toolkit.hookspecs import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command("crash")
            def crash(n: int = 1):
                return [][n]
    '''))
    dist = site / "toolkit_raise-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toolkit-raise\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[toolkit]\nraiser = raiseplug\n")
    return site


def test_a_plugin_command_that_raises_is_one_line_naming_it(raising_site):
    done = toolkit(raising_site, "crash", "--n", "3")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("error: command 'crash' (plugin 'raiser' (toolkit-raise 2.0)) failed: "
                                   "IndexError: list index out of range")
    done = toolkit(raising_site, "--debug", "crash")
    assert "Traceback" in done.stderr and "IndexError" in done.stderr
    done = toolkit(raising_site, "crash", "--help")
    assert done.returncode == 0 and "--n" in done.stdout  # the options survive the wrapping


def test_a_dataset_input_crop_that_fails_names_its_plugin(register_plugin):
    from tiny import tiny_recipe

    from toolkit.errors import PluginError
    from toolkit.model import input_crop

    def bad_crop(options, width, height):
        return (0, 0, width)  # three numbers

    @hookimpl
    def register_datasets(register):
        register("cropper", "toolkit.testing:load_synthetic", input_crop=bad_crop)
        register("raiser", "toolkit.testing:load_synthetic", input_crop=lambda o, w, h: 1 / 0)

    register_plugin(SimpleNamespace(register_datasets=register_datasets), "crops")
    recipe = tiny_recipe()
    for name, message in (("cropper", "returned 3 numbers"), ("raiser", "ZeroDivisionError")):
        recipe.data.dataset, recipe.data.options = name, {}
        crop = input_crop(recipe)
        with pytest.raises(PluginError, match=rf"dataset '{name}' \(plugin 'crops', \(in-process\)\) input_crop failed: .*{message}"):
            crop(40, 30)
