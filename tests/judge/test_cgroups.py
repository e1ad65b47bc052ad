"""cgroup limits and cleanup on both hierarchies this kernel offers.

This machine mounts v1 controllers plus an empty v2 hierarchy at /sys/fs/cgroup/unified (hybrid):
v1 is exercised with its limits, v2 with attach, cgroup.kill and removal (its controllers are
bound to v1 here, so v2 limits are only exercised on a unified host).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from quantcraft_dagster.judge import cgroups
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox, SandboxLimits

from .helpers import assert_nothing_left

UNIFIED = next(
    (
        p
        for p in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
        if (p / "cgroup.controllers").exists()
    ),
    None,
)


@pytest.mark.skipif(cgroups.detect_version() != 1, reason="v1 controllers not mounted")
def test_v1_limits_are_written():
    group = cgroups.create(f"t-{uuid.uuid4().hex[:8]}", cgroups.CgroupLimits(2**30, 64, (0,)))
    try:
        root = cgroups.ROOT
        name = group.dirs[0].name
        assert (root / "memory" / cgroups.PARENT / name / "memory.limit_in_bytes").read_text().strip() == str(
            2**30
        )
        assert (root / "pids" / cgroups.PARENT / name / "pids.max").read_text().strip() == "64"
        assert (root / "cpuset" / cgroups.PARENT / name / "cpuset.cpus").read_text().strip() == "0"
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs)


@pytest.mark.skipif(UNIFIED is None, reason="no cgroup v2 hierarchy mounted")
def test_v2_attach_kill_and_remove(engines):
    sandbox = BubblewrapSandbox(SandboxLimits(), cgroup_root=UNIFIED)
    engine = sandbox.start(engines / "daemonize", 8080)
    assert engine.cgroup.version == 2
    time.sleep(1.0)  # the engine double-forks its daemon meanwhile
    assert len(engine.cgroup.pids()) >= 3  # bwrap, its init, the engine (and the daemon)
    result = engine.stop()
    assert result.leftover_pids == []
    assert not engine.cgroup.path.exists()
    assert_nothing_left()
