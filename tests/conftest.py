"""Shared fixtures: the example engines, built once per test session from examples/engines; each
test started where a user's shell runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from quantcraft_dagster.judge import cgroups

ROOT = Path(__file__).resolve().parent.parent
ENGINES_SRC = ROOT / "examples" / "engines"


@pytest.fixture(scope="session")
def engines() -> Path:
    """Directory holding build/engine and every variant (make is a no-op when up to date)."""
    subprocess.run(["make", "-s", "-C", str(ENGINES_SRC), "-j2"], check=True)
    return ENGINES_SRC / "build"


@pytest.fixture(autouse=True)
def from_a_shell() -> None:
    """Each test starts as from a user's shell, whatever earlier tests did to this process.

    - In the cpu controller's root group: an in-process judging moves this process into the
      judges' heavy group (``judge.cpu_weight``) and every process a later test started
      inherited it: a ``quantcraft up`` and the CPU hogs of a "busy host" then competed inside
      the judges' weight, as no user's processes do, and the stack's SCHED_IDLE services starved.
    - With SIGTERM's default action: Dagster's in-process execution (``capture_interrupts``)
      leaves SIGTERM with SIGINT's disposition, which is "ignored" when pytest runs as a
      background job (``cmd &``); every process a later test started inherited the ignored
      SIGTERM, so a service, a judge or ``quantcraft up`` (which keeps ignored signals ignored,
      as under ``nohup``) did not stop when the test signalled it.
    """
    root = cgroups.cpu_root(cgroups.ROOT, cgroups.detect_version())
    with contextlib.suppress(OSError):  # no writable cpu controller: everything is in the root
        (root / "cgroup.procs").write_text(str(os.getpid()))
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server over HTTP on loopback: the real protocol, no AWS."""
    from tests.servers import moto_s3

    with moto_s3() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def bucket(request, tmp_path):
    """Both bucket backends with the same keys; S3 talks HTTP to the moto server."""
    import uuid

    from quantcraft_dagster.storage.bucket import LocalBucket, S3Bucket

    if request.param == "local":
        return LocalBucket(tmp_path / "bucket")
    url = request.getfixturevalue("s3_server")
    return S3Bucket(f"qc-{uuid.uuid4().hex[:12]}", url, access_key="test", secret_key="test")
