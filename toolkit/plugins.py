"""Plugin loading: entry points of the ``toolkit`` group, one pluggy manager, registries.

Built-in plugins are found through the same entry-point group as third-party ones.
A plugin that fails to import or to register is reported and skipped; the rest keeps working.

Environment:
- ``TOOLKIT_PLUGINS=a,b``: load only these entry points (empty string: none).
- ``TOOLKIT_BLOCK_PLUGINS=a,b``: never load these.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .errors import RecipeError, RegistryError, ToolkitError
from .recipe import Origin, Recipe, absolute_paths, load_recipe
from .registry import Entry, Registry, options_dict

GROUP = "toolkit"
# the distribution of the core and its built-in plugins: its registrations win a name clash
CORE_DISTRIBUTION = "toolkit-gan"
# hook name -> registry kind (singular, used in messages)
KINDS = {
    "register_datasets": "dataset",
    "register_networks": "network",
    "register_losses": "loss",
    "register_classifiers": "classifier",
}


@dataclass
class PluginInfo:
    """What ``toolkit plugins`` shows for one plugin."""

    name: str
    distribution: str = ""
    version: str = ""
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    # registrations (and commands) of this plugin that were skipped because another plugin
    # already has the name: one line each, naming both plugins and distributions
    skipped: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def where(self) -> str:
        """``plugin 'data' (toolkit-gan 0.1.0)``."""
        dist = f"{self.distribution} {self.version}".strip()
        return f"plugin '{self.name}' ({dist})" if dist else f"plugin '{self.name}'"

    @property
    def builtin(self) -> bool:
        return self.distribution == CORE_DISTRIBUTION


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to load or register."""


def _names(env_value: str | None) -> set[str] | None:
    if env_value is None:
        return None
    return {n.strip() for n in env_value.split(",") if n.strip()}


class Plugins:
    """The plugin manager plus the registries built from its hooks."""

    def __init__(self):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] | None = None

    # -- loading -------------------------------------------------------------------------
    def load_entry_points(self, environ=os.environ) -> None:
        """Import and register every entry point of the ``toolkit`` group that is allowed."""
        only = _names(environ.get("TOOLKIT_PLUGINS"))
        blocked = _names(environ.get("TOOLKIT_BLOCK_PLUGINS")) or set()
        for ep in importlib.metadata.entry_points(group=GROUP):
            if ep.name in blocked or (only is not None and ep.name not in only):
                continue
            dist = getattr(ep, "dist", None)
            if ep.name in self.info:
                old = self.info[ep.name]
                if dist is not None and old.distribution not in (dist.name, "") and not old.error:
                    warnings.warn(f"plugin '{ep.name}' of {dist.name} {dist.version} skipped: {old.where()} has the "
                                  f"same entry-point name (uninstall or block one: TOOLKIT_BLOCK_PLUGINS)",
                                  PluginWarning, stacklevel=2)
                continue
            info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "")
            self.info[ep.name] = info
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # a broken plugin must not take down the CLI
                self._fail(info, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            self.register(module, ep.name, info=info)

    def register(self, plugin, name: str, info: PluginInfo | None = None) -> bool:
        """Register a plugin object in-process (tests use this). Returns False if it was skipped."""
        if self.pm.get_plugin(name) is not None or self.pm.is_registered(plugin):
            warnings.warn(f"plugin '{name}' skipped: a plugin of that name is already registered", PluginWarning, stacklevel=2)
            return False
        info = info or PluginInfo(name, distribution="(in-process)")
        self.info[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, f"cannot be registered: {exc}")
            return False
        unknown = [hc.name for hc in (self.pm.get_hookcallers(plugin) or []) if hc.spec is None]
        if unknown:
            self.pm.unregister(plugin)
            known = ", ".join(sorted(KINDS) + ["register_commands"])
            self._fail(info, f"implements unknown hook(s) {', '.join(unknown)} (known: {known})")
            return False
        info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin))
        self._registries = None
        return True

    def unregister(self, name: str) -> None:
        """Remove an in-process plugin (the counterpart of :meth:`register`)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.info.pop(name, None)
        self._registries = None

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.error = message
        info.hooks = []
        warnings.warn(f"plugin '{info.name}' skipped: {message}", PluginWarning, stacklevel=3)

    # -- registries ----------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        """The registry of ``kind`` ('dataset', 'network', 'loss', 'classifier'), collected on first use."""
        if self._registries is None:
            self._registries = self._collect()
        return self._registries[kind]

    def _collect(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind) for kind in KINDS.values()}
        for info in self.info.values():
            info.registered, info.skipped = {}, [line for line in info.skipped if line.startswith("command ")]
        for hook_name, kind in KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():  # registration order (pluggy calls them in reverse)
                info = self.info.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
                if info.error:
                    continue

                def register(name, factory, options=None, description="", _kind=kind, _info=info, **extra):
                    problem = _registration_problem(name, factory, options, description)
                    if problem:
                        raise TypeError(f"register({name!r}, ...): {problem}")
                    dist = f"{_info.distribution} {_info.version}".strip()
                    entry = Entry(_kind, name, factory, options, description, _info.name, extra, dist)
                    self._add(registries[_kind], entry, _info)

                try:
                    impl.function(register=register)
                except Exception as exc:
                    self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
                    for kind_name, names in info.registered.items():  # a failed plugin adds nothing
                        for name in names:
                            registries[kind_name].remove(name)
                    info.registered = {}
        return registries

    def _add(self, registry: Registry, entry: Entry, info: PluginInfo) -> None:
        """Add ``entry``; on a name clash keep one (the built-in, else the first) and report the other."""
        kind, name = registry.kind, entry.name
        if name in registry:
            old = registry.get(name)
            old_info = self.info.get(old.plugin) or PluginInfo(old.plugin)
            if old.plugin == info.name:
                raise RegistryError(f"{kind} '{name}' is registered twice by the same plugin")
            if info.builtin and not old_info.builtin:  # the built-in wins whatever the loading order
                registry.remove(name)
                names = old_info.registered.get(kind, [])
                if name in names:
                    names.remove(name)
                if not names:
                    old_info.registered.pop(kind, None)
                self._clash(old_info, info, kind, name)
            else:
                self._clash(info, old_info, kind, name)
                return
        registry.add(entry)
        info.registered.setdefault(kind, []).append(name)

    def _clash(self, loser: PluginInfo, winner: PluginInfo, kind: str, name: str) -> None:
        line = f"{kind} '{name}' skipped: {winner.where()} registers that name"
        loser.skipped.append(line)
        warnings.warn(f"{loser.where()}: {line} (uninstall or block one: TOOLKIT_BLOCK_PLUGINS)", PluginWarning, stacklevel=4)

    def add_commands(self, cli) -> None:
        """Let plugins add commands to the typer app; a failing plugin is reported and skipped.

        A command (or group) named like one that exists already (a built-in, or an earlier
        plugin's) is reported and removed: the existing one stays. Called again on the same app
        (``toolkit.cli.main()`` run twice in one process), a plugin's own commands are not added twice
        and not reported as clashes.
        """
        added = cli.__dict__.setdefault("_plugin_command_owners", {})  # name -> the plugin that added it
        owners = {name: added.get(name, "the toolkit itself") for name in _command_names(cli)}
        for impl in self.pm.hook.register_commands.get_hookimpls():  # registration order
            info = self.info.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            before = (list(cli.registered_commands), list(cli.registered_groups))
            try:
                impl.function(cli=cli)
            except Exception as exc:
                cli.registered_commands[:], cli.registered_groups[:] = before  # a failed plugin adds nothing
                self._fail(info, f"register_commands raised {type(exc).__name__}: {exc}")
                continue
            for attr, old in (("registered_commands", before[0]), ("registered_groups", before[1])):
                kept = list(old)
                for item in getattr(cli, attr)[len(old):]:
                    name = _command_name(item)
                    if owners.get(name) == info.where():  # this plugin's, from an earlier call
                        info.commands += [] if name in info.commands else [name]
                        continue
                    if name in owners:
                        line = f"command '{name}' skipped: {owners[name]} has a command of that name"
                        info.skipped.append(line)
                        warnings.warn(f"{info.where()}: {line}", PluginWarning, stacklevel=2)
                        continue
                    owners[name] = added[name] = info.where()
                    info.commands.append(name)
                    if getattr(item, "callback", None) is not None:
                        item.callback = _guarded(item.callback, f"command '{name}' ({info.where()})")
                    kept.append(item)
                getattr(cli, attr)[:] = kept


def _guarded(callback, origin: str):
    """A plugin command whose unexpected exceptions are one line naming it (traceback with --debug)."""
    import functools

    from .errors import PluginError, ToolkitError, exception_line

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except ToolkitError:
            raise
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("typer", "click"):  # Exit, Abort, usage errors
                raise
            raise PluginError(f"{origin} failed: {exception_line(exc)}") from exc

    return run


def _command_name(item) -> str:
    """The name typer gives a registered command or group."""
    from typer.main import get_command_name

    name = getattr(item, "name", None)
    if name:
        return name
    instance = getattr(item, "typer_instance", None)
    if instance is not None and getattr(instance.info, "name", None):
        return instance.info.name
    callback = getattr(item, "callback", None) or getattr(getattr(instance, "registered_callback", None), "callback", None)
    return get_command_name(callback.__name__) if callback is not None else "?"


def _command_names(cli) -> list[str]:
    return [_command_name(c) for c in cli.registered_commands] + [_command_name(g) for g in cli.registered_groups]


def _registration_problem(name, factory, options, description) -> str | None:
    """What is wrong with the arguments of one ``register(...)`` call, or None."""
    from pydantic import BaseModel

    if not isinstance(name, str) or not name.strip():
        return f"the name must be a non-empty string, got {name!r}"
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        return f"the factory must be a callable or a 'module:attribute' string, got {factory!r}"
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        return f"options must be a pydantic model class or None, got {options!r}"
    if not isinstance(description, str):
        return f"description must be a string, got {type(description).__name__}"
    return None


_PLUGINS: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin manager, loading entry points on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = Plugins()
        _PLUGINS.load_entry_points()
    return _PLUGINS


def describe_plugin(name: str) -> str:
    """``plugin 'paper', toolkit-gan 0.1.0``: a plugin and the distribution that installed it."""
    info = get_plugins().info.get(name)
    dist = f"{info.distribution} {info.version}".strip() if info is not None else ""
    return f"plugin '{name}', {dist}" if dist else f"plugin '{name}'"


def registry(kind: str) -> Registry:
    """Shortcut: ``registry('network').get('paper28')``."""
    return get_plugins().registry(kind)


def resolve(recipe: Recipe, source: str = "recipe", origin: Origin = Origin()) -> Recipe:
    """The recipe with every plugin name checked, each plugin's option defaults filled in and
    every relative path (plugin options declared as paths, ``evaluate.classifier``) made
    absolute from ``origin`` (default: the working directory)."""
    data = absolute_paths(recipe, "", origin)

    def options(entry, given, where: str) -> dict:
        parsed = entry.parse_options(given, where)
        return absolute_paths(parsed, where, origin) if isinstance(parsed, BaseModel) else options_dict(parsed)

    try:
        data["data"]["options"] = options(registry("dataset").get(recipe.data.dataset), recipe.data.options, "data.options")
        data["model"]["options"] = options(registry("network").get(recipe.model.network), recipe.model.options, "model.options")
        for name, loss in recipe.losses.items():
            data["losses"][name]["options"] = options(registry("loss").get(name), loss.options, f"losses.{name}.options")
    except ToolkitError as exc:
        raise RecipeError(f"{source}: {exc}") from None
    return Recipe.model_validate(data)


def load_resolved(path: str | Path, overrides=()) -> Recipe:
    """Read, override, validate and :func:`resolve` a recipe file (relative paths in the file
    start at its folder, those given in ``overrides`` at the working directory)."""
    return resolve(load_recipe(path, overrides), str(path), Origin.of(path, overrides))


def plugin_versions() -> dict:
    """``{plugin: "distribution version"}`` of the plugins that loaded (recorded in checkpoints)."""
    return {name: f"{i.distribution} {i.version}".strip() for name, i in get_plugins().info.items() if not i.error}


def reset() -> None:
    """Forget the loaded plugins (tests; a changed environment)."""
    global _PLUGINS
    _PLUGINS = None


def recipe_schema() -> dict:
    """The JSON schema of recipes, with every registered plugin's options.

    ``data.options``, ``model.options`` and ``losses.NAME.options`` follow the options model of
    the dataset, network and loss term the recipe names (JSON Schema ``if``/``then``), and the
    names themselves are limited to those registered, so an editor checks a whole recipe.
    """
    from pydantic.json_schema import models_json_schema

    kinds = {"dataset": registry("dataset").entries(), "network": registry("network").entries(),
             "loss": registry("loss").entries()}
    models, seen = [(Recipe, "validation")], {Recipe}
    for entries in kinds.values():
        for entry in entries:
            if entry.options is not None and entry.options not in seen:
                seen.add(entry.options)
                models.append((entry.options, "validation"))
    refs, top = models_json_schema(models, ref_template="#/$defs/{model}")
    defs = top["$defs"]

    def definition(ref: dict) -> dict:
        return defs[ref["$ref"].split("/")[-1]]

    def options_ref(entry) -> dict:
        if entry.options is None:
            return {"type": "object", "maxProperties": 0, "description": f"{entry.kind} '{entry.name}' takes no options"}
        return {**refs[(entry.options, "validation")], "description": entry.description or f"options of {entry.kind} '{entry.name}'"}

    root = dict(definition(refs[(Recipe, "validation")]))
    props = root["properties"]
    for section, key, kind in (("data", "dataset", "dataset"), ("model", "network", "network")):
        target = definition(props[section])
        names = [e.name for e in kinds[kind]]
        target["properties"][key] = {**target["properties"][key], "enum": names}
        target["allOf"] = [{"if": {"properties": {key: {"const": e.name}}, "required": [key]},
                            "then": {"properties": {"options": options_ref(e)}}} for e in kinds[kind]]
    losses = props["losses"]
    loss_config = losses.get("additionalProperties", {})
    losses["propertyNames"] = {"enum": [e.name for e in kinds["loss"]]}
    losses["properties"] = {e.name: {"allOf": [loss_config, {"properties": {"options": options_ref(e)}}],
                                     "description": e.description} for e in kinds["loss"]}
    root["$defs"] = defs
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return root
