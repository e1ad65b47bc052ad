"""The judge's CPUs belong to the judge: scheduling weights of the kernel's cpu controller.

Per-thread priorities do not order processes of different sessions: with
``kernel.sched_autogroup_enabled`` (Debian's default) every session is a scheduling group of its
own, and ``nice -20`` or ``SCHED_IDLE`` rank threads inside one session only. A process in a cpu
cgroup other than the root leaves its autogroup, and cgroups compete by their weights, across
sessions and hosts alike. So:

- ``judges`` (the judging process, hence its load generator) and every engine group get the
  largest weight (v1 ``cpu.shares`` 262144, v2 ``cpu.weight`` 10000). The platform's services
  stay SCHED_IDLE off the engines' CPUs (``cpus.background``): at the smallest weight they were
  starved on a busy host and ``quantcraft up`` could not stop them in time.

The groups sit under the project's parent (``cgroups.PARENT``), given the largest weight too, so
the judges' weight holds against every other group on the host. The Docker sandbox's containers
(its probe, which runs the load generator, and the engines) go under ``sandboxes``, heavy too,
rather than the daemon's ``docker`` parent, which weighs as much as one nice-0 process of another
session (docs/judging.md). Without a cpu controller (a container's read-only
``/sys/fs/cgroup``) nothing is placed and the judge relies on CPU pinning
alone; :func:`place` says so by returning False.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import cgroups

JUDGES = "judges"
SANDBOXES = "sandboxes"


def group(role: str, root: Path = cgroups.ROOT) -> Path | None:
    """The cpu group of ``role``, created and weighed; None without a writable cpu controller."""
    version = cgroups.detect_version(root)
    if version == 1 and not (root / "cpu").is_dir():
        return None
    try:
        path = cgroups.cpu_parent(root, version) / role
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    if version == 2 and not (path / "cpu.weight").exists():
        return None
    cgroups.weigh(path, role in (JUDGES, SANDBOXES), version)
    return path


def procs_file(role: str, root: Path = cgroups.ROOT) -> str | None:
    """Where a process writes its pid to join ``role`` (from preexec: a plain string)."""
    path = group(role, root)
    return str(path / "cgroup.procs") if path is not None else None


def place(role: str, pid: int = 0, root: Path = cgroups.ROOT) -> bool:
    """Move process ``pid`` (default: this one, every thread) into ``role``'s group."""
    procs = procs_file(role, root)
    if procs is None:
        return False
    try:
        Path(procs).write_text(str(pid or os.getpid()))
    except OSError:
        return False
    return True


def container_parent(cgroup_driver: str, root: Path = cgroups.ROOT) -> str | None:
    """The ``cgroup_parent`` of the Docker sandbox's containers: the heavy ``sandboxes`` group,
    where this judge could make it and the daemon names groups by path (its ``cgroupfs`` driver;
    a systemd driver takes slices, whose weight is systemd's). None leaves them under the
    daemon's own parent: a judge in a container (read-only ``/sys/fs/cgroup``) cannot weigh it."""
    if cgroup_driver != "cgroupfs" or group(SANDBOXES, root) is None:
        return None
    return f"/{cgroups.PARENT}/{SANDBOXES}"
