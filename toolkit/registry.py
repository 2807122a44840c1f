"""Named things that plugins register: datasets, networks, loss terms."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from .errors import PluginError, RegistryError, ToolkitError, did_you_mean
from .recipe import format_validation_error


def options_dict(options) -> dict:
    """Parsed options (a pydantic model, a dict or None) as a plain JSON-ready dict."""
    if options is None:
        return {}
    return options.model_dump(mode="json") if isinstance(options, BaseModel) else dict(options)


@dataclass
class Entry:
    """One registered thing: a factory (built lazily), its options model and its origin."""

    kind: str
    name: str
    factory: Callable | str
    options: type[BaseModel] | None = None
    description: str = ""
    plugin: str = "?"
    extra: dict = field(default_factory=dict)
    distribution: str = ""  # "toolkit-gan 0.1.0": the distribution that installed the plugin

    def resolve(self) -> Callable:
        """The factory itself, importing ``"module:attr"`` strings on first use."""
        if isinstance(self.factory, str):
            self.factory = self._load(self.factory, self.kind)
        return self.factory

    def resolve_extra(self, key: str) -> Any:
        """``extra[key]`` (None when absent), importing a ``"module:attr"`` string on first use."""
        value = self.extra.get(key)
        if isinstance(value, str):
            value = self.extra[key] = self._load(value, f"{self.kind} {key}")
        return value

    def _load(self, target: str, what: str) -> Any:
        module, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # any failure to import a plugin's code is reported
            raise ToolkitError(f"{what} '{self.name}' (plugin {self.plugin}) cannot be loaded from '{target}': {exc}") from exc
        return obj

    def parse_options(self, options: dict | BaseModel | None, where: str = "options") -> Any:
        """Validate ``options`` against the entry's model; errors name the key path."""
        if isinstance(options, BaseModel) or self.options is None:
            if self.options is None and options:
                raise ToolkitError(
                    f"{where}: {self.kind} '{self.name}' takes no options (got {sorted(options)})"
                )
            return options
        try:
            return self.options.model_validate(options or {})
        except ValidationError as exc:
            raise ToolkitError(format_validation_error(exc, prefix=where, model=self.options)) from None

    def origin(self) -> str:
        """``loss 'adv' (plugin 'paper', toolkit-gan 0.1.0)``: what error messages call this entry."""
        where = f"plugin '{self.plugin}', {self.distribution}" if self.distribution else f"plugin '{self.plugin}'"
        return f"{self.kind} '{self.name}' ({where})"

    def build(self, *args, options=None, where: str = "options", **kwargs):
        """Validate the options, call the factory and check what it returns.

        A factory's :class:`ToolkitError` (a user error such as a missing folder) passes
        unchanged; any other exception, or a result that breaks the contract of its kind
        (:data:`RESULT_CHECKS`), is a one-line :class:`PluginError` naming the entry, its plugin
        and distribution (the original traceback is chained, shown with ``--debug``).
        """
        parsed = self.parse_options(options, where)
        factory = self.resolve()
        self._check_signature(factory, args, kwargs)
        try:
            result = factory(*args, options=parsed, **kwargs)
        except ToolkitError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.origin()} failed to build: {type(exc).__name__}: {exc}") from exc
        check = RESULT_CHECKS.get(self.kind)
        if check is not None:
            problem = check(result, kwargs)
            if problem:
                raise PluginError(f"{self.origin()} {problem}")
        return result

    def _check_signature(self, factory: Callable, args: tuple, kwargs: dict) -> None:
        """A factory that cannot take the toolkit's call is one line with both forms, not a bare TypeError."""
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # no signature to read (a builtin): let the call speak
            return
        try:
            signature.bind(*args, options=None, **kwargs)
        except TypeError as exc:
            names = FACTORY_ARGUMENTS.get(self.kind, ())
            positional = list(names) if len(names) == len(args) else [f"arg{i + 1}" for i in range(len(args))]
            call = ", ".join([*positional, "options", *kwargs])
            name = getattr(factory, "__name__", type(factory).__name__)
            where = f"{factory.__module__}:" if getattr(factory, "__module__", None) else ""
            raise PluginError(f"{self.origin()}: its factory {where}{name}{signature} cannot be called as the toolkit "
                              f"calls a {self.kind} factory, {name}({call}) ({exc})") from None


# the positional arguments the toolkit passes each kind's factory (``options`` and keywords follow)
FACTORY_ARGUMENTS = {"network": ("spec", "image_shape"), "loss": ("spec",), "classifier": ("image_shape", "num_classes")}


def _check_loss(result, kwargs) -> str | None:
    if not callable(result):
        return f"returned {type(result).__name__}, expected a toolkit.losses.LossTerm (a callable)"
    needs = getattr(result, "needs", frozenset())
    if not isinstance(needs, (set, frozenset)) or not all(isinstance(n, str) for n in needs):
        return f"has needs={needs!r}, expected a frozenset of names such as {{'swap'}}"
    return None


def _check_classifier(result, kwargs) -> str | None:
    import torch

    if not isinstance(result, torch.nn.Module):
        return f"returned {type(result).__name__}, expected a torch.nn.Module"
    return None


# what each kind's factory must return; a check returns a problem (completing "<entry> ...") or None.
# The module that defines a kind's result type states its check with check_results (toolkit.data: dataset,
# toolkit.networks: network), so that this layer imports neither (the import contract, tests/test_imports.py).
RESULT_CHECKS: dict[str, Callable] = {
    "loss": _check_loss,
    "classifier": _check_classifier,
}


def check_results(kind: str, check: Callable) -> None:
    """State what the factories of ``kind`` must return: ``check(result, kwargs) -> problem or None``."""
    RESULT_CHECKS[kind] = check


class Registry:
    """A name -> :class:`Entry` table for one kind of thing, with helpful misses."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        old = self._entries.get(entry.name)
        if old is not None:
            raise RegistryError(
                f"{self.kind} '{entry.name}' is registered twice: by plugin '{old.plugin}' "
                f"and by plugin '{entry.plugin}'"
            )
        self._entries[entry.name] = entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} '{name}': {did_you_mean(name, self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
