"""A container's cgroup as a judge on its host reads it: from its files on v1 and v2, and killed
at once, frozen (the Docker sandbox's stop of a fork bomb)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from quantcraft_dagster.judge import cgroups
from quantcraft_dagster.judge.container_cgroup import ContainerCgroup
from tests.servers import wait_for


@pytest.mark.parametrize("version", [1, 2])
def test_the_engines_cgroup_is_read_from_its_files_on_v1_and_v2(tmp_path, version):
    """``/proc/<pid>/cgroup`` of a container on a v1 host (with a hybrid unified line) and a v2 one."""
    if version == 1:
        membership = (
            "12:memory:/docker/abc\n7:freezer:/docker/abc\n5:cpu,cpuacct:/docker/abc\n"
            "0::/system.slice/docker.service\n"
        )
        for controller in ("cpuacct", "memory", "freezer"):
            (tmp_path / controller / "docker" / "abc").mkdir(parents=True)
        (tmp_path / "cpuacct" / "docker" / "abc" / "cpuacct.usage").write_text("1500000\n")
        (tmp_path / "memory" / "docker" / "abc" / "memory.max_usage_in_bytes").write_text("4096\n")
        (tmp_path / "freezer" / "docker" / "abc" / "freezer.state").write_text("THAWED\n")
        procs = tmp_path / "freezer" / "docker" / "abc" / "cgroup.procs"
    else:
        membership = "0::/system.slice/docker-abc.scope\n"
        group = tmp_path / "system.slice" / "docker-abc.scope"
        group.mkdir(parents=True)
        (group / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
        (group / "memory.peak").write_text("4096\n")
        procs = group / "cgroup.procs"
    found = ContainerCgroup.find(membership, tmp_path)
    assert found is not None and found.usage() == (1_500_000, 4096)
    assert found.procs == procs
    # Seen from a run container's own cgroup namespace, a path leads above the tree it sees: never
    # followed, even where such a file happens to exist (the API is asked instead).
    inside = tmp_path / "namespaced"
    inside.mkdir()
    (tmp_path / "docker-x.scope").mkdir()
    (tmp_path / "docker-x.scope" / "cpu.stat").write_text("usage_usec 1\n")
    assert ContainerCgroup.find("0::/../docker-x.scope\n", inside) is None


def test_kill_all_stops_a_fork_loop_in_the_group():
    """A group on this host's own hierarchy (as Docker makes one) with a shell that forks without
    end: frozen and killed, it is empty at once."""
    name = f"qc-test-{uuid.uuid4().hex[:8]}"
    version = cgroups.detect_version()
    root = cgroups.ROOT
    dirs = [root / name] if version == 2 else [root / c / name for c in ("cpuacct", "memory", "freezer")]
    for d in dirs:
        d.mkdir()
    try:
        join = "; ".join(f"echo $$ > {d / 'cgroup.procs'}" for d in dirs)
        proc = subprocess.Popen(["sh", "-c", f"{join}; while :; do sleep 5 & done"])

        def forking() -> ContainerCgroup | None:
            group = ContainerCgroup.of(proc.pid, name)  # the group's name stands for the container's id
            return group if group and group.procs and len(group.procs.read_text().split()) >= 20 else None

        group = wait_for(forking, 10, "the loop to fork 20 processes", every=0.01)
        assert isinstance(group, ContainerCgroup) and group.procs is not None
        assert group.kill_all(timeout=5.0)
        assert group.procs.read_text() == ""
        assert proc.wait(timeout=5) == -9
    finally:
        for d in dirs:
            d.rmdir()
