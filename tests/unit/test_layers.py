"""The three layers import downwards only, and only the settings module reads the environment
(docs/architecture.md, "Layers"):

    schemas/  the contract: imports neither sinks/ nor streams/
    sinks/    the SQL side: imports schemas/ only
    streams/  Kafka, faust, the settings and the CLI: may import both

Every import statement counts, also those inside functions (imports are often deferred there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ("schemas", "sinks", "streams")  # each may import the ones before it
SETTINGS_MODULE = "streams/settings.py"
# Reading os.environ outside the settings module: none. (Child processes inherit the environment
# through streams.settings.child_env(), which lives in the settings module for that reason.)
ENV_ALLOWED: set[str] = set()


def _modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (REPO / layer).rglob("*.py"))


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))  # importlib.import_module("x")
    return found


def _layer_of(name: str) -> str | None:
    top = name.split(".")[0]
    return top if top in LAYERS else None


def test_the_walk_sees_every_layer():
    assert {p.relative_to(REPO).parts[0] for p in _modules()} == set(LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_import_runs_up_a_layer(path):
    own = path.relative_to(REPO).parts[0]
    upward = [
        f"line {line}: {name}"
        for line, name in _imported(ast.parse(path.read_text()))
        if (target := _layer_of(name)) and LAYERS.index(target) > LAYERS.index(own)
    ]
    assert not upward, f"{own}/ may import only {LAYERS[: LAYERS.index(own) + 1]}: {upward}"


def _env_reads(tree: ast.AST) -> list[int]:
    """Lines that touch os.environ, os.getenv, os.putenv or os.unsetenv (also `from os import
    environ`)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in (
            "environ",
            "environb",
            "getenv",
            "putenv",
            "unsetenv",
        ):
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "environb", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_settings_module_reads_the_environment(path):
    name = str(path.relative_to(REPO))
    if name == SETTINGS_MODULE or name in ENV_ALLOWED:
        return
    lines = _env_reads(ast.parse(path.read_text()))
    assert not lines, (
        f"{name} reads the environment (lines {lines}): add a field to "
        f"{SETTINGS_MODULE} and pass the settings down"
    )


def test_the_checks_catch_what_they_are_for():
    upward = ast.parse("def f():\n    from streams.app import create_app\n")
    assert _imported(upward) == [(2, "streams.app")]
    assert _env_reads(ast.parse("import os\nx = os.environ.get('X')\n")) == [2]
    assert _env_reads(ast.parse("from os import getenv\n")) == [1]
