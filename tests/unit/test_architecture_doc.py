"""docs/architecture.md names only code that exists, so the page cannot drift from the code unnoticed.

Every backticked span that names code is checked: a file or folder (`web/ws/codec.py`), a setting
(`[database] write_lanes`), a dotted name (`storage.batching.Batcher`, `Storage.store_messages`, `pykka.Actor`)
and a bare class or constant name (`RouterActor`, `BACKLOG_PAGE`). Other spans (frame types, SQL) are prose.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import settings
from tests.helpers.docs import code_spans
from tests.helpers.server import REPO_ROOT

CODE_FOLDERS = ("actors", "cluster", "protocol", "storage", "web", "bench")
CODE_MODULES = ("routing.py", "settings.py", "metrics.py", "greenlets.py")

PATH = re.compile(r"[\w.-]+(/[\w.-]+)*(/|\.(py|md|json|conf|ini|sh|js|yml))")
SETTING = re.compile(r"\[(\w+)\] (\w+)")
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
CLASS_NAME = re.compile(r"_?[A-Z][a-z0-9]+([A-Z][a-z0-9]*)+")  # two humps at least: `RouterActor`, not `Stored`
CONSTANT = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")


def spans() -> list[str]:
    """The doc's backticked spans, a call's arguments dropped (`Node.mark_delivered(...)` names the method)."""
    return sorted({re.sub(r"\(.*\)$", "", span) for span in code_spans("architecture.md")})


@cache
def code_files() -> list[Path]:
    files = [REPO_ROOT / name for name in CODE_MODULES]
    for folder in CODE_FOLDERS:
        files.extend(sorted((REPO_ROOT / folder).rglob("*.py")))
    return files


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def definitions() -> dict[str, list[str]]:
    """Every class, function and assigned name of the project's code -> the modules defining it."""
    defined: dict[str, list[str]] = {}
    for path in code_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [target.id for target in targets if isinstance(target, ast.Name)]
            else:
                continue
            for name in names:
                defined.setdefault(name, []).append(module_name(path))
    return defined


def resolve(dotted: str) -> Any:
    """The object `dotted` names: a module path then attributes, or a project class then its attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return _attributes(target, parts[cut:])
    for module in definitions().get(parts[0], []):
        target = getattr(importlib.import_module(module), parts[0], None)
        if target is not None:
            return _attributes(target, parts[1:])
    raise AssertionError(f"`{dotted}`: neither a module nor a class of the project starts it")


def _attributes(target: Any, names: list[str]) -> Any:
    for name in names:
        members = {*getattr(target, "__dataclass_fields__", {}), *instance_attributes(target)}
        assert hasattr(target, name) or name in members, f"{target!r} has no `{name}`"
        target = getattr(target, name, None)
    return target


def instance_attributes(target: Any) -> set[str]:
    """The names a class's methods assign to `self` (`Node.message_writer`); none for anything else."""
    if not inspect.isclass(target):
        return set()
    tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and isinstance(node.ctx, ast.Store)
    }


@pytest.mark.parametrize("span", spans())
def test_every_name_of_code_in_the_architecture_page_exists(span: str) -> None:
    if PATH.fullmatch(span) and "/" in span:
        assert (REPO_ROOT / span).exists(), f"`{span}`: no such file or folder"
    elif setting := SETTING.fullmatch(span):
        assert setting[2] in settings.SCHEMA.get(setting[1], {}), f"`{span}`: no such setting"
    elif DOTTED.fullmatch(span) and not PATH.fullmatch(span):
        resolve(span)
    elif CLASS_NAME.fullmatch(span) or CONSTANT.fullmatch(span):
        assert span in definitions(), f"`{span}`: defined nowhere in the project's code"


def test_the_page_names_code() -> None:
    """The checks above run on something: the page names modules, functions and settings."""
    named = [span for span in spans() if DOTTED.fullmatch(span) and not PATH.fullmatch(span)]
    assert len(named) >= 20, named
