"""The Docker backend's own guarantees: the hardening the daemon applies, the engine's CPU time,
and the reaper (the judging behaviour itself runs in test_hostile/test_judging for both backends)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import docker
import pytest

from quantcraft_dagster.judge.docker_sandbox import (
    EXPIRES_LABEL,
    JUDGING_LABEL,
    LABEL,
    OWNER_LABEL,
    DockerSandbox,
    reap,
)
from quantcraft_dagster.judge.sandbox import SandboxLimits


@pytest.fixture
def sandbox(docker_client, sandbox_image) -> DockerSandbox:
    limits = SandboxLimits(cpus=(1,), pids=64)
    return DockerSandbox(limits, sandbox_image, judging_id="run-1234", client=docker_client)


def test_container_is_hardened_as_designed(sandbox, engines):
    engine = sandbox.start(engines / "engine", 8080)
    try:
        attrs = engine.container.attrs
        host = attrs["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Privileged"] is False
        assert host["PidsLimit"] == 64
        assert host["Memory"] == host["MemorySwap"] == 4 * 2**30
        assert host["CpusetCpus"] == "1"
        assert host["Tmpfs"]["/tmp"] == f"size={100 * 2**20},mode=1777"
        assert {u["Name"]: u["Hard"] for u in host["Ulimits"]}["core"] == 0
        assert attrs["Config"]["User"] == "65534:65534"
        assert attrs["Config"]["Labels"][JUDGING_LABEL] == "run-1234"
        (app,) = [m for m in attrs["Mounts"] if m["Destination"] == "/app"]
        assert app["Type"] == "volume" and app["RW"] is False
        assert os.readlink(engine.netns_path) != os.readlink("/proc/self/ns/net")
    finally:
        done = engine.stop()
    assert done.code == 0 and not done.died_early and not done.oom_killed
    assert "listening on 127.0.0.1:8080" in done.stderr_tail
    assert done.cpu_ns > 0


def test_start_to_listening_is_quick(sandbox, engines):
    """DESIGN's goal: started and healthy within 2 s on this machine (vfs)."""
    start = time.monotonic()
    engine = sandbox.start(engines / "engine", 8080)
    try:
        while "listening" not in engine.stderr.text(join_timeout=0) and time.monotonic() - start < 10:
            time.sleep(0.01)
        assert time.monotonic() - start < 2.0
    finally:
        engine.stop()


def test_reaper_removes_only_finished_judgings(docker_client, sandbox_image):
    def labelled(**labels: str):
        name = f"qc-reap-{uuid.uuid4().hex[:8]}"
        labels = {LABEL: "engine", **labels}
        return docker_client.containers.create(sandbox_image, ["/app/engine"], name=name, labels=labels)

    now = time.time()
    live = labelled(**{EXPIRES_LABEL: f"{now + 600:.0f}"})
    expired = labelled(**{EXPIRES_LABEL: f"{now - 1:.0f}"})
    orphan = labelled(**{EXPIRES_LABEL: f"{now + 600:.0f}", OWNER_LABEL: uuid.uuid4().hex * 2})
    try:
        removed = reap(docker_client)
        assert expired.name in removed and orphan.name in removed and live.name not in removed
        left = {c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL})}
        assert live.name in left and not {expired.name, orphan.name} & left
    finally:
        for container in (live, expired, orphan):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
