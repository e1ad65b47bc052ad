"""Judgings as the platform runs them, and assertions about the machine after one: nothing of the
engine may survive."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from quantcraft_dagster.judge import cgroups
from quantcraft_dagster.judge.config import JudgeConfig
from quantcraft_dagster.judge.sandbox import NOBODY

# Short timeouts keep hostile tests fast (a hung engine is found in 2 s, not 5). The validity
# bounds are the product's: every judging in these tests is judged as a user's is, once.
FAST = JudgeConfig(profile="quick", health_timeout_s=3.0, report_timeout_s=2.0, phase_time_limit_s=10.0)


def _sandbox_user_processes() -> list[tuple[int, str, str]]:
    """(pid, ps line, cgroup file) of each live process of the sandbox user. A zombie holds
    nothing (its parent reaps it): left out."""
    out = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "-u", str(NOBODY)], capture_output=True, text=True)
    found = []
    for line in out.stdout.splitlines():
        pid, stat = line.split()[:2]
        try:
            cgroups_of = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue  # gone meanwhile
        if not stat.startswith("Z"):
            found.append((int(pid), line.strip(), cgroups_of))
    return found


def sandbox_processes() -> list[str]:
    """Live processes of the sandbox user outside Docker containers, with their cgroups.

    A Docker engine's processes belong to its container, whose removal the Docker backend's own
    check asserts (``tests.docker_env.sandbox_leftovers``); the daemon may still be tearing a
    removed container down while the next test runs (``docker_engine_processes``)."""
    return [
        f"{line} {cgroups_of.splitlines()[0] if cgroups_of else ''}"
        for _, line, cgroups_of in _sandbox_user_processes()
        if "docker" not in cgroups_of
    ]


def docker_engine_processes() -> list[int]:
    """Processes of the sandbox user still inside a Docker container's cgroup."""
    return [pid for pid, _, cgroups_of in _sandbox_user_processes() if "docker" in cgroups_of]


def engine_cgroups() -> list[Path]:
    root = cgroups.ROOT
    parents = [root / cgroups.PARENT] + [p / cgroups.PARENT for p in root.iterdir() if p.is_dir()]
    return [
        child
        for parent in parents
        if parent.is_dir()
        for child in parent.iterdir()
        if child.is_dir() and child.name.startswith("engine-")
    ]


def assert_nothing_left(grace_s: float = 2.0) -> None:
    """No process of the sandbox user and no engine cgroup (killed zombies get a moment to go)."""
    deadline = time.monotonic() + grace_s
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sandbox_processes()
    assert left == [], left
    assert engine_cgroups() == []
