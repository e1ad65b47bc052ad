"""The judging and hostile-engine tests run against both sandbox backends.

``judge_binary`` starts bubblewrap unless given a sandbox; for the ``docker`` parameter the default
is swapped for the Docker backend, so every test in those modules judges through Docker unchanged,
and afterwards no engine container or volume may remain.
"""

from __future__ import annotations

import time

import pytest

from quantcraft_dagster.judge import judging
from quantcraft_dagster.judge.docker_sandbox import DockerSandbox
from quantcraft_dagster.judge.sandbox import SandboxLimits
from tests.docker_env import docker_client, sandbox_image, sandbox_leftovers  # noqa: F401 (fixtures)
from tests.judge.helpers import docker_engine_processes

BOTH_BACKENDS = {"tests.judge.test_hostile", "tests.judge.test_judging"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Both backends, or those a test's ``sandboxes`` marker names."""
    if metafunc.module.__name__ in BOTH_BACKENDS:
        only = metafunc.definition.get_closest_marker("sandboxes")
        backends = list(only.args) if only else ["bubblewrap", "docker"]
        metafunc.parametrize("sandbox_backend", backends, indirect=True)


@pytest.fixture(autouse=True)
def sandbox_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    backend = getattr(request, "param", "bubblewrap")
    if backend != "docker":
        yield backend
        return
    client = request.getfixturevalue("docker_client")
    image = request.getfixturevalue("sandbox_image")

    def docker_default(limits: SandboxLimits) -> DockerSandbox:
        return DockerSandbox(limits, image, client=client)

    monkeypatch.setattr(judging, "BubblewrapSandbox", docker_default)
    yield backend
    assert sandbox_leftovers(client) == []
    # The daemon goes on tearing the removed containers down (their layers, whole copies on vfs;
    # their processes exiting): the next test, often a bubblewrap judging of its own, starts once
    # that is over, so one test's cleanup is never timed in another's trials.
    deadline = time.monotonic() + 15
    while docker_engine_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
