"""The core is pure: gateway/core/*.py import only the standard library and each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "gateway" / "core"
CORE_FILES = sorted(CORE.glob("*.py"))

FORBIDDEN = {"trio", "sqlite3", "sqlite_utils", "socket", "httpx", "quart", "quart_trio", "hypercorn",
             "trio_websocket", "gateway", "asyncio", "anyio", "requests", "aiohttp"}


def imports(path: Path) -> list[tuple[int, int, str]]:
    """(line, level, module) for every import; `from . import x` gives module "" at level 1."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, 0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.level, node.module or ""))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("__import__", "import_module")
        ):
            found.append((node.lineno, -1, "dynamic import"))
    return found


def violations(path: Path) -> list[str]:
    bad = []
    for line, level, module in imports(path):
        top = module.split(".")[0]
        if level == -1:
            bad.append(f"{path.name}:{line}: dynamic imports are not allowed in the core")
        elif level > 1:
            bad.append(f"{path.name}:{line}: relative import leaves the core package ({'.' * level}{module})")
        elif level == 0 and top in FORBIDDEN:
            bad.append(f"{path.name}:{line}: imports {module}")
        elif level == 0 and top not in sys.stdlib_module_names:
            bad.append(f"{path.name}:{line}: imports {module}, which is not in the standard library")
    return bad


def test_core_files_are_found() -> None:
    names = {p.name for p in CORE_FILES}
    assert {"odds.py", "drops.py", "board.py", "frames.py", "filters.py", "model.py", "time.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import trio", True),
        ("import sqlite3 as db", True),
        ("from httpx import AsyncClient", True),
        ("import quart_trio.app", True),
        ("from gateway.core import odds", True),  # absolute gateway import
        ("from ..store import Store", True),  # relative import out of core
        ("import importlib\nimportlib.import_module('trio')", True),
        ("import asyncio", True),
        ("import attrs", True),  # third party
        ("from . import odds", False),
        ("from .model import Quote", False),
        ("import json, math\nfrom collections import deque", False),
        ("def f():\n    import socket", True),  # nested imports count too
    ],
)
def test_checker_itself(tmp_path: Path, source: str, bad: bool) -> None:
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    assert bool(violations(path)) is bad


# -- the layers point one way: core <- store/hub/auth <- writer/streaming <- web <- app -----------

PACKAGE = CORE.parent
ENTRY = {"app", "cli", "testing", "pytest_plugin", "__main__", "cluster"}  # composition roots, entry points


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _gateway_imports(path: Path) -> set[str]:
    """Absolute names of the gateway modules `path` imports (at the top or inside functions)."""
    package = _module_of(path).rsplit(".", 1)[0]
    out = set()
    for _, level, module in imports(path):
        if level > 0:
            base = package.split(".")[: len(package.split(".")) - (level - 1)]
            module = ".".join([*base, module]) if module else ".".join(base)
        if module.startswith("gateway"):
            out.add(module)
    return out


def test_no_module_below_the_composition_root_imports_it_or_the_web_layer_from_below() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_of(path)
        top = name.split(".")[1] if name.count(".") else ""
        if top in ENTRY:
            continue
        for target in _gateway_imports(path):
            if target == "gateway.app" or target.startswith("gateway.app."):
                bad.append(f"{name} imports the composition root")
            if (target == "gateway.web" or target.startswith("gateway.web.")) and top != "web":
                bad.append(f"{name} (below the web layer) imports {target}")
    assert bad == []
