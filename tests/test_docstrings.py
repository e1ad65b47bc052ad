"""Every command a docstring gives runs as written: ``python -m MODULE`` names a runnable module,
``uvicorn [--factory] MODULE:NAME`` a name the module has (a factory when ``--factory``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("quantcraft_dagster", "assets", "resources", "sensors", "leaderboard_app")
PYTHON_M = re.compile(r"python -m ([\w.]+)")
UVICORN = re.compile(r"uvicorn (--factory )?([\w.]+):(\w+)")


def docstrings() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    text = ast.get_docstring(node)
                    if text:
                        found.append((str(path.relative_to(ROOT)), text))
    return found


COMMANDS = [(where, m) for where, text in docstrings() for m in PYTHON_M.findall(text)]
SERVERS = [(where, m) for where, text in docstrings() for m in UVICORN.findall(text)]


def test_docstrings_give_commands():
    assert COMMANDS and SERVERS  # the scan itself finds what it checks


@pytest.mark.parametrize(("where", "module"), COMMANDS)
def test_python_m_names_a_runnable_module(where, module):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{where}: no module {module}"
    source = Path(spec.origin).read_text()
    assert 'if __name__ == "__main__"' in source or spec.origin.endswith("__main__.py"), (
        f"{where}: python -m {module} would do nothing"
    )


@pytest.mark.parametrize(("where", "server"), SERVERS)
def test_uvicorn_names_an_app_or_a_factory(where, server):
    factory, module, name = server
    target = getattr(importlib.import_module(module), name, None)
    assert target is not None, f"{where}: {module} has no {name}"
    assert callable(target) if factory else hasattr(target, "router"), f"{where}: {module}:{name}"
