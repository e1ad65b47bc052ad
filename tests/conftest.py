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


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server over HTTP on loopback: the real protocol, no AWS."""
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait()


@pytest.fixture(params=["local", "s3"])
def bucket(request, tmp_path):
    """Both bucket backends with the same keys; S3 talks HTTP to the moto server."""
    import uuid

    from quantcraft_dagster.storage.bucket import LocalBucket, S3Bucket

    if request.param == "local":
        return LocalBucket(tmp_path / "bucket")
    url = request.getfixturevalue("s3_server")
    return S3Bucket(f"qc-{uuid.uuid4().hex[:12]}", url, access_key="test", secret_key="test")
