"""Only streams/faust_compat.py touches faust's (mode's, aiokafka's) private API.

Walks every module of schemas/, sinks/ and streams/ and fails on `x._name` where x is not self or
cls, on getattr/setattr/hasattr/delattr with a literal "_name", and on `self._name` inside a class
derived from a faust or mode class (a faust Record's `_options`, a Service's `_stopped`). Our own
private names used across modules are in ALLOWED, each with the reason, reviewed by hand."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "sinks", "streams")
COMPAT = "streams/faust_compat.py"
THIRD_PARTY = ("faust", "mode", "aiokafka")

# (module, attribute): why it is not faust's private API
ALLOWED = {
    ("streams/worker.py", "_flush_lock"): "streams.agents' own lock (blogpulse, not faust)",
    (
        "streams/ingest/delivery.py",
        "_producer",
    ): "streams.publisher.Publisher's kafka-python producer (blogpulse's class, not faust)",
}


def _third_party_names(tree: ast.Module) -> set[str]:
    """Names a module binds to faust/mode/aiokafka modules or their members."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in THIRD_PARTY:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] in THIRD_PARTY
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _private(name: str) -> bool:
    return name[:1] == "_" and name[1:2].islower()  # not dunders, not argparse._SubParsersAction


def _uses(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    third_party = _third_party_names(tree)
    faust_classes: list[ast.ClassDef] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in third_party:
                    faust_classes.append(node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append((node.lineno, node.args[1].value))
    for cls in faust_classes:
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                found.append((node.lineno, node.attr))
    return found


def test_only_the_compat_module_touches_faust_private_api():
    offences = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            module = path.relative_to(REPO).as_posix()
            if module == COMPAT or "/migrations/" in module:
                continue
            for line, attr in _uses(path):
                if (module, attr) not in ALLOWED:
                    offences.append(f"{module}:{line}: .{attr}")
    assert not offences, (
        "private attributes outside streams/faust_compat.py (move them behind "
        "a named function there, or add a reviewed ALLOWED entry):\n" + "\n".join(offences)
    )


def test_the_walk_sees_what_it_should():
    sample = REPO / COMPAT
    attrs = {attr for _, attr in _uses(sample)}
    assert {"_producer", "_committed_offset", "_wait_on_metadata", "_fetcher"} <= attrs


def test_allowed_entries_are_still_needed():
    used = set()
    for module, attr in ALLOWED:
        used |= {(module, a) for _, a in _uses(REPO / module) if a == attr}
    assert used == set(ALLOWED)
