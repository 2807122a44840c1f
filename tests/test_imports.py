"""The import contract: the toolkit's modules import one way, from the command line down.

Every import counts, including those inside functions (they exist only to keep start-up
cheap, never to hide a cycle). A module may import modules of lower layers only; modules in
one layer are independent of each other. ``toolkit.cli`` is one layer of its own (its
modules import each other, without cycles).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "toolkit"

# highest first; "|" separates independent modules of one layer
LAYERS = [
    "toolkit.__main__",
    "toolkit.cli",
    "toolkit.testing",
    "toolkit.train",
    "toolkit.evaluate | toolkit.figures | toolkit.sweep | toolkit.explore",
    "toolkit.classifier | toolkit.model | toolkit.checks",
    "toolkit.checkpoint | toolkit.networks | toolkit.losses | toolkit.data | toolkit.speed | toolkit.ema"
    " | toolkit.distributed | toolkit.augment",
    "toolkit.plugins",
    "toolkit.registry | toolkit.hookspecs",
    "toolkit.recipe | toolkit.latent | toolkit.images | toolkit.rundir",
    "toolkit.outputs",
    "toolkit.errors | toolkit.files",
    "toolkit",
]


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known) -> set[str]:
    """The toolkit modules that ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def layer_of(name: str) -> tuple[int, str]:
    """(layer index, unit): a module of the cli package belongs to the unit toolkit.cli."""
    for index, layer in enumerate(LAYERS):
        for unit in (u.strip() for u in layer.split("|")):
            if name == unit or (unit == "toolkit.cli" and name.startswith("toolkit.cli.")):
                return index, unit
    raise AssertionError(f"module {name} is in no layer of the import contract (add it to LAYERS in {__file__})")


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_a_module_imports_only_lower_layers(name):
    index, unit = layer_of(name)
    wrong = []
    for target in sorted(GRAPH[name]):
        target_index, target_unit = layer_of(target)
        if target_unit == unit:
            continue  # inside the cli package
        if target_index < index:
            wrong.append(f"{target} (a higher layer)")
        elif target_index == index:
            wrong.append(f"{target} (the same layer: they are meant to be independent)")
    assert not wrong, f"{name} imports {', '.join(wrong)}"


def test_no_import_cycles():
    seen, on_path, cycles = set(), [], []

    def visit(name):
        if name in on_path:
            cycles.append(on_path[on_path.index(name):] + [name])
            return
        if name in seen:
            return
        seen.add(name)
        on_path.append(name)
        for target in sorted(GRAPH[name]):
            visit(target)
        on_path.pop()

    for name in sorted(GRAPH):
        visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_only_the_command_line_and_the_test_helpers_import_the_trainer():
    assert sorted(n for n, targets in GRAPH.items() if "toolkit.train" in targets) == ["toolkit.cli.recipe", "toolkit.cli.train",
                                                                                      "toolkit.testing"]


def test_the_recipe_is_a_pure_schema():
    assert GRAPH["toolkit.recipe"] <= {"toolkit.errors"}
