"""Shared fixtures: the example engines, built once per test session from examples/engines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINES_SRC = ROOT / "examples" / "engines"


@pytest.fixture(scope="session")
def engines() -> Path:
    """Directory holding build/engine and every variant (make is a no-op when up to date)."""
    subprocess.run(["make", "-s", "-C", str(ENGINES_SRC), "-j2"], check=True)
    return ENGINES_SRC / "build"


@pytest.fixture
def build_variant(tmp_path):
    """Compile one variant with knobs (canary port, paths, victim pid) the test chose at run time."""

    def build(variant: str, **knobs: str | int) -> Path:
        out = tmp_path / variant
        defines = [f"-DVARIANT_{variant.upper()}"]
        for key, value in knobs.items():
            defines.append(f'-D{key}="{value}"' if isinstance(value, str) else f"-D{key}={value}")
        subprocess.run(
            ["gcc", "-O2", "-std=gnu11", *defines, "-o", str(out), str(ENGINES_SRC / "engine.c")], check=True
        )
        return out

    return build
