"""The docs promise nothing that does not exist (issue 14, item 13): every recipe snippet in the
README and docs validates as written, and every ``toolkit COMMAND`` they or the help texts name
exists."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from toolkit.plugins import resolve
from toolkit.recipe import parse_recipe

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]


def blocks(language: str):
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(rf"```{language}\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 1
            yield pytest.param(path, match.group(1), id=f"{path.relative_to(ROOT)}:{line}")


def merge(base: dict, part: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in part.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("path, text", list(blocks("ya?ml")))
def test_every_recipe_snippet_validates(path, text):
    """A snippet is a whole recipe, or says which recipe it is part of (``# part of recipes/x.yaml``)."""
    data = yaml.safe_load(text)
    first = text.strip().splitlines()[0]
    part = re.match(r"#\s*part of (\S+\.ya?ml)", first)
    if part:
        base = ROOT / part.group(1)
        assert base.is_file(), f"{path}: the snippet names {part.group(1)}, which does not exist"
        data = merge(yaml.safe_load(base.read_text()), data)
    resolve(parse_recipe(data, source=f"{path.name} snippet"), source=f"{path.name} snippet")


def _command_tree():
    import typer.main

    import toolkit.cli

    toolkit.cli._register_commands()
    root = typer.main.get_command(toolkit.cli.app)
    return root


def _mentions(text: str):
    for match in re.finditer(r"(?<![\w-])toolkit ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", text):
        yield match.group(1).split()


def _group(node) -> bool:
    return isinstance(getattr(node, "commands", None), dict)


def _check(root, words, where):
    first = words[0]
    if first not in root.commands:
        return f"{where}: 'toolkit {first}' is no command (commands: {', '.join(sorted(root.commands))})"
    node = root.commands[first]
    if _group(node) and len(words) > 1 and not words[1].startswith("-"):
        if words[1] not in node.commands and words[1] not in ("-", ""):
            return f"{where}: 'toolkit {first} {words[1]}' is no command (has: {', '.join(sorted(node.commands))})"
    return None


PROSE = {"is", "itself", "loads", "knows", "reads", "writes", "does", "and", "or", "with", "the", "that", "a", "as", "in", "on", "to"}


def test_every_command_the_docs_name_exists():
    root = _command_tree()
    problems = []
    for path in DOCS:
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(), re.S):
            for line in block.splitlines():
                for command in re.findall(r"(?:^|[;&|]\s*|\$\s*)toolkit ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", line):
                    problem = _check(root, command.split(), path.name)
                    if problem:
                        problems.append(problem)
    assert not problems, problems


def test_every_command_the_help_texts_name_exists():
    root = _command_tree()
    problems = []

    def texts(node, trail):
        yield " ".join(trail), node.help or ""
        for param in node.params:
            yield " ".join(trail) + f" {param.name}", getattr(param, "help", None) or ""
        if _group(node):
            for name, child in node.commands.items():
                yield from texts(child, [*trail, name])

    for where, text in texts(root, ["toolkit"]):
        for words in _mentions(text):
            if words[0] in PROSE:
                continue
            problem = _check(root, words, where)
            if problem:
                problems.append(problem)
    assert not problems, problems


def test_the_checks_catch_a_missing_command():
    root = _command_tree()
    assert "no command" in (_check(root, ["recipe", "describe"], "x") or "")
    assert "no command" in (_check(root, ["describe"], "x") or "")
    assert _check(root, ["plugins", "show"], "x") is None and _check(root, ["train"], "x") is None


def test_recipe_help_promises_only_its_commands():
    from typer.testing import CliRunner

    import toolkit.cli

    root = _command_tree()
    result = CliRunner().invoke(toolkit.cli.app, ["recipe", "--help"])
    assert result.exit_code == 0
    assert "describe" not in result.output
    assert set(root.commands["recipe"].commands) == {"show", "validate", "schema"}
