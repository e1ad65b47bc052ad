"""Nothing the deployment starts is privileged (issue 8): no ``privileged``, no added capability
and no host pid namespace in any compose file or run launcher config, and the platform's own
containers (services and run containers) drop every capability. The compose stack test checks a
live run container against the same rule; the Docker sandbox's tests check the engine and probe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.docker_env import ROOT

COMPOSE_FILES = [ROOT / "docker-compose.yml", *sorted((ROOT / "deploy").glob("compose.*.yml"))]
INSTANCE_FILES = sorted((ROOT / "deploy").glob("dagster*.yaml"))
# Images of others, run as their makers ship them (the stand-ins replace them offline).
THIRD_PARTY = {"minio", "postgres", "redis"}


def walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every (dotted key, value) pair of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip("."), value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, path)


@pytest.mark.parametrize("path", COMPOSE_FILES + INSTANCE_FILES, ids=lambda p: p.name)
def test_no_privilege_is_granted_anywhere(path: Path):
    for key, value in walk(yaml.safe_load(path.read_text())):
        leaf = key.rsplit(".", 1)[-1]
        assert leaf != "privileged", f"{path.name}: {key}"
        assert leaf != "cap_add", f"{path.name}: {key} = {value}"
        assert not (leaf in ("pid", "pid_mode") and value == "host"), f"{path.name}: {key}"
        assert not (leaf in ("network_mode",) and str(value).startswith("container:")), f"{path.name}: {key}"


def test_run_containers_drop_every_capability():
    for path in INSTANCE_FILES:
        launcher = yaml.safe_load(path.read_text())["run_launcher"]
        kwargs = launcher["config"].get("container_kwargs")
        if kwargs is None:  # the Celery launcher's judgings run in its workers, on judge hosts
            continue
        assert kwargs["cap_drop"] == ["ALL"], path.name
        assert kwargs["security_opt"] == ["no-new-privileges:true"], path.name


def test_the_platforms_services_drop_every_capability():
    merged: dict[str, dict] = {}
    for path in COMPOSE_FILES:
        services = yaml.safe_load(path.read_text()).get("services", {})
        for name, service in services.items():
            merged.setdefault(name, {}).update(service)
    ours = {name: s for name, s in merged.items() if name not in THIRD_PARTY}
    assert {"dagster-code", "dagster-daemon", "dagster-webserver", "leaderboard", "prepare"} <= set(ours)
    for name, service in ours.items():
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("security_opt") == ["no-new-privileges:true"], name
