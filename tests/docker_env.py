"""Fixtures for tests against a real Docker daemon: started here when none answers, never skipped.

CI starts the daemon and builds the images before pytest (``.ci/run``); run alone, the first test
that needs them does both (the project image takes minutes on a fresh machine).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest

from quantcraft_dagster import settings
from quantcraft_dagster.judge.docker_sandbox import LABEL

ROOT = Path(__file__).resolve().parent.parent


def _missing(client: docker.DockerClient, names: list[str]) -> bool:
    return not all(client.images.list(name=name) for name in names)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    subprocess.run(["bash", str(ROOT / "scripts" / "dockerd.sh")], check=True)
    return docker.from_env(timeout=120)


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The engines' image; the probe's beside it (built from the project image)."""
    configured = settings.current()
    if _missing(docker_client, [configured.sandbox_image, configured.loadgen_image]):
        subprocess.run(["bash", str(ROOT / "deploy" / "build-images.sh")], check=True)
    return configured.sandbox_image


def restart_daemon() -> None:
    """Stop the Docker daemon as a host's service manager would (SIGTERM: it stops every container,
    no live-restore) and start it again: through systemd where it runs the daemon, else with
    scripts/dockerd.sh (this project's CI)."""
    if subprocess.run(["systemctl", "is-active", "--quiet", "docker"], capture_output=True).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True)
        return
    pid = subprocess.run(["pgrep", "-o", "-x", "dockerd"], capture_output=True, text=True, check=True)
    subprocess.run(["kill", "-TERM", pid.stdout.strip()], check=True)
    subprocess.run(["timeout", "90", "tail", f"--pid={pid.stdout.strip()}", "-f", "/dev/null"], check=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "dockerd.sh")], check=True)


def sandbox_leftovers(client: docker.DockerClient) -> list[str]:
    """Names of every engine or probe container and volume still on the daemon."""
    containers = client.containers.list(all=True, filters={"label": LABEL})
    volumes = client.volumes.list(filters={"label": LABEL})
    return [c.name for c in containers] + [v.name for v in volumes]
