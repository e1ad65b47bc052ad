"""Judging slots on one host: disjoint CPU sets, each taken by one judging at a time.

A slot is an engine CPU set and a load-generator CPU set (``split_cpus`` of a share of the host's
CPUs). A judging holds a lock on every CPU of its slot for as long as it judges: ``flock`` on one
file per CPU in a host-wide folder, so any process on the host (every worker, ``quantcraft up``,
a calibration) sees the same locks, and whatever shape of slot another worker was configured
with, two judgings never share a CPU. The kernel drops a process's locks when it exits, SIGKILL
included, so a dead judging never keeps its slot; the next judging on those CPUs removes the
engine cgroup it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cgroups import remove_orphans
from .cpus import online_cpus, split_cpus


@dataclass(frozen=True)
class Slot:
    engine_cpus: tuple[int, ...]
    loadgen_cpus: tuple[int, ...]

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.engine_cpus) | set(self.loadgen_cpus)))


def slot_key(host: str, slot: Slot) -> str:
    """A slot's name across the contest, e.g. ``judge-a@cpu2-3``: its host and its engine CPUs
    (unique on a host, slots being disjoint). The ``judge_slots`` partition of its calibration."""
    return f"{host}@cpu{'-'.join(map(str, slot.engine_cpus))}"


def host_of(key: str) -> str:
    """The host part of a :func:`slot_key`."""
    return key.rsplit("@cpu", 1)[0]


def host_slots(cpus: list[int] | None = None, per_slot: int = 4) -> list[Slot]:
    """As many slots as ``per_slot`` CPUs fit in the host, sharing its CPUs out evenly (the last
    takes any remainder); a host smaller than one slot is one slot of all its CPUs (2 cores:
    engine CPU 1, load generator CPU 0)."""
    cpus = sorted(cpus if cpus is not None else online_cpus())
    count = max(1, len(cpus) // max(2, per_slot))
    size = len(cpus) // count
    chunks = [cpus[i * size : (i + 1) * size] for i in range(count - 1)] + [cpus[(count - 1) * size :]]
    return [Slot(*split_cpus(chunk)) for chunk in chunks]


def _try_lock(folder: Path, slot: Slot) -> list[int] | None:
    """Every CPU's lock of ``slot``, or none of them (non-blocking, so two takers never deadlock)."""
    held: list[int] = []
    for cpu in slot.cpus:
        # O_CLOEXEC: the sandbox and the load generator must not inherit a lock and outlive it.
        fd = os.open(folder / f"cpu{cpu}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            for other in held:
                os.close(other)
            return None
        held.append(fd)
    return held


@contextlib.contextmanager
def take_slot(folder: Path, slots: list[Slot], poll_s: float = 0.2) -> Iterator[Slot]:
    """Wait for a free slot of ``slots``, hold it for the block, release it however the block ends.

    No deadline here: a judging that waits too long is the run monitor's to fail (max runtime).
    """
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in slots:
            held = _try_lock(folder, slot)
            if held is not None:
                try:
                    remove_orphans(set(slot.cpus))
                    yield slot
                finally:
                    for fd in held:
                        os.close(fd)
                return
        time.sleep(poll_s)
