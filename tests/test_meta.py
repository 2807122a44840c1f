"""The plugin surface stays documented and tested; every registered network and loss passes the smoke tests."""

import re
from pathlib import Path

import pytest

from toolkit import hookspecs
from toolkit.plugins import registry
from toolkit.testing import smoke_test_loss, smoke_test_network

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, "toolkit_spec"))


def test_the_hookspec_module_declares_hooks():
    assert {"register_datasets", "register_networks", "register_losses", "register_classifiers",
            "register_commands"} <= set(HOOKS)


def _headings() -> list[str]:
    return re.findall(r"^#{2,4} +(.+?) *$", GUIDE.read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_in_the_guide(hook):
    assert any(re.search(rf"\b{hook}\b", heading) for heading in _headings()), \
        f"docs/plugins.md has no section (a '## {hook}' heading) for hook {hook}"


def test_the_guide_documents_no_hook_that_does_not_exist():
    documented = {m for heading in _headings() for m in re.findall(r"\bregister_\w+", heading)}
    assert documented <= set(HOOKS), f"docs/plugins.md documents unknown hooks {sorted(documented - set(HOOKS))}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_used_in_a_test(hook):
    tests = [p for p in Path(__file__).parent.glob("test_*.py") if p.name != Path(__file__).name]
    assert any(re.search(rf"\b{hook}\b", p.read_text()) for p in tests), f"no test under tests/ mentions {hook}"


def _small(entry) -> dict:
    """Options that keep a network tiny: ``width`` 0.125 where the family has that option."""
    fields = entry.options.model_fields if entry.options is not None else {}
    return {"width": 0.125} if "width" in fields else {}


@pytest.mark.parametrize("entry", registry("network").entries(), ids=lambda e: e.name)
def test_every_network_passes_the_smoke_test(entry):
    smoke_test_network(entry.name, _small(entry))


@pytest.mark.parametrize("entry", registry("loss").entries(), ids=lambda e: e.name)
def test_every_loss_passes_the_smoke_test(entry):
    smoke_test_loss(entry.name)
