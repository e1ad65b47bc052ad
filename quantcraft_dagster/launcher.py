"""The production run launcher: Dagster's ``DockerRunLauncher``, its run containers one-offs of
the compose service that launches them.

A run container is the daemon's (or the webserver's) doing, not compose's: without compose's
labels ``docker-compose down`` leaves it, and the engines it judges with, running. With them it is
a one-off of that service, as ``docker-compose run`` would make it, so ``down`` stops it (Dagster
marks the run failed; the judging's sandboxes go with it: ``judge.docker_sandbox.compose_labels``)
and removes it. Outside compose this is ``DockerRunLauncher`` exactly.
"""

from __future__ import annotations

from typing import Any

import docker
from dagster_docker import DockerRunLauncher
from docker.errors import DockerException

from .judge.docker_sandbox import compose_labels


class ComposeDockerRunLauncher(DockerRunLauncher):
    """``deploy/dagster.yaml``'s run launcher; configured exactly as ``DockerRunLauncher``."""

    def __init__(self, container_kwargs: dict[str, Any] | None = None, **config: Any) -> None:
        try:
            own = compose_labels(docker.from_env())
        except DockerException:  # no Docker here (an instance read on another machine): no runs
            own = {}
        if own:
            container_kwargs = dict(container_kwargs or {})
            container_kwargs["labels"] = {**dict(container_kwargs.get("labels") or {}), **own}
        super().__init__(container_kwargs=container_kwargs, **config)
