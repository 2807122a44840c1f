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

import pluggy

from . import hookspecs
from .errors import RegistryError
from .registry import Entry, Registry

GROUP = "toolkit"
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
            if ep.name in self.info or ep.name in blocked or (only is not None and ep.name not in only):
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "")
            self.info[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take down the CLI
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
            info.registered = {}
        for hook_name, kind in KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                info = self.info.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
                if info.error:
                    continue

                def register(name, factory, options=None, description="", _kind=kind, _info=info, **extra):
                    dist = f"{_info.distribution} {_info.version}".strip()
                    entry = Entry(_kind, name, factory, options, description, _info.name, extra, dist)
                    registries[_kind].add(entry)
                    _info.registered.setdefault(_kind, []).append(name)

                try:
                    impl.function(register=register)
                except RegistryError:
                    raise  # the same name twice is an error that names both plugins
                except Exception as exc:
                    self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
                    for kind_name, names in info.registered.items():  # a failed plugin adds nothing
                        for name in names:
                            registries[kind_name].remove(name)
                    info.registered = {}
        return registries

    def add_commands(self, cli) -> None:
        """Let plugins add commands to the typer app; a failing plugin is reported and skipped."""
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = self.info.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
                self._fail(info, f"register_commands raised {type(exc).__name__}: {exc}")


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


def reset() -> None:
    """Forget the loaded plugins (tests; a changed environment)."""
    global _PLUGINS
    _PLUGINS = None
