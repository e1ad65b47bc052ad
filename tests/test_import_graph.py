"""The layers as DESIGN draws them, checked on every import, lazy ones (inside functions) included:
the core does no I/O and knows no Dagster; a sandbox backend never imports the orchestrator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "quantcraft_dagster"
IO_MODULES = {
    "os", "pathlib", "socket", "subprocess", "asyncio", "threading", "http", "urllib", "shutil",
    "tempfile", "select", "signal", "mmap", "dagster", "boto3", "botocore", "docker", "starlette",
    "picows", "uvloop", "requests", "sqlite3",
}  # fmt: skip


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, wherever the import statement stands."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if node.level)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_does_no_io(path):
    for module in imports(path):
        top = module.split(".")[0]
        assert top not in IO_MODULES, f"core/{path.name} imports {module}"
        if top == "quantcraft_dagster":
            assert module.startswith("quantcraft_dagster.core"), f"core/{path.name} imports {module}"


@pytest.mark.parametrize("backend", ["sandbox.py", "docker_sandbox.py"])
def test_sandboxes_do_not_import_the_orchestrator(backend):
    found = imports(PACKAGE / "judge" / backend)
    assert not {m for m in found if m.startswith("quantcraft_dagster.judge.judging")}, found


def test_the_check_sees_lazy_imports(tmp_path):
    """The test itself: an import inside a function counts."""
    probe = PACKAGE / "core" / "_probe_lazy.py"
    probe.write_text("def f():\n    import socket\n    from ..judge import judging\n")
    try:
        assert {"socket", "quantcraft_dagster.judge", "quantcraft_dagster.judge.judging"} <= imports(probe)
    finally:
        probe.unlink()


def test_settings_know_only_the_core():
    """Settings parse the environment with the core's rules; they never load the judge."""
    found = imports(PACKAGE / "settings.py")
    assert not {m for m in found if m.startswith("quantcraft_dagster.judge")}, found
