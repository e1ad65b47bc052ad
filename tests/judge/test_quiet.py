"""The platform freezer: frozen for a timed trial, thawed after, and thawed if the judge dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from quantcraft_dagster.judge.cgroups import PlatformGroup
from quantcraft_dagster.judge.quiet import quiet_platform


@pytest.fixture
def platform():
    """A stand-in platform service (a sleeper) in its own freezer group, removed after."""
    group = PlatformGroup(name=f"platform-test-{uuid.uuid4().hex[:8]}")
    procs = group.procs_file()
    service = subprocess.Popen(
        ["sleep", "60"],
        preexec_fn=lambda: open(procs, "w").write(str(os.getpid())),  # noqa: SIM115
    )
    yield group, service
    path, _, thawed = group.state_file()
    path.write_text(thawed)
    service.kill()
    service.wait()
    time.sleep(0.1)
    group.path.rmdir()


def state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def frozen(group: PlatformGroup) -> bool:
    path, value, _ = group.state_file()
    return path.read_text().strip() == value


def test_frozen_for_the_block_and_thawed_after(platform):
    group, service = platform
    assert group.active()
    with quiet_platform(group, max_s=30):
        assert frozen(group)
        assert os.getpid() not in {int(p) for p in (group.path / "cgroup.procs").read_text().split()}
    assert not frozen(group) and state(service.pid) == "S"


@pytest.mark.parametrize(
    "kill",
    [
        lambda pid: os.kill(pid, signal.SIGKILL),
        lambda pid: os.killpg(pid, signal.SIGTERM),  # a supervisor stopping the judge's whole group
    ],
    ids=["sigkill", "sigterm-to-its-group"],
)
def test_a_judge_killed_mid_trial_leaves_the_platform_thawed(platform, kill):
    group, _ = platform
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from quantcraft_dagster.judge.cgroups import PlatformGroup\n"
        "from quantcraft_dagster.judge.quiet import quiet_platform\n"
        f"with quiet_platform(PlatformGroup(name={group.path.name!r}), max_s=60):\n"
        "    print('frozen', flush=True); time.sleep(60)\n"
    )
    judge = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert judge.stdout.readline().strip() == "frozen" and frozen(group)
    kill(judge.pid)
    judge.wait()
    deadline = time.monotonic() + 5
    while frozen(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not frozen(group)


def test_a_stopping_stack_can_thaw_its_services_whoever_froze_them(platform):
    group, service = platform
    path, value, _ = group.state_file()
    path.write_text(value)
    group.thaw()
    assert not frozen(group)
    service.terminate()
    assert service.wait(timeout=5) == -signal.SIGTERM


def test_no_platform_no_freeze():
    with quiet_platform(None, max_s=1):
        pass
    assert not PlatformGroup(name=f"absent-{uuid.uuid4().hex[:8]}").active()
