"""CPU placement: engines and the load generator on disjoint CPUs, everything else out of the way.

Measurements are only fair if nothing but the load generator competes for its CPU. The platform's
own processes (Dagster, pollers) run as SCHED_IDLE on the non-engine CPUs: they get the CPU only
when nobody else wants it, and a waking load generator always preempts them. The judge, its load
generator and the engines put themselves back to normal scheduling.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..core.cpuset import parse_cpu_list


def online_cpus() -> list[int]:
    """The host's CPUs, not this process's affinity (a pinned Dagster worker must not shrink them)."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text()
    except OSError:
        return list(range(os.cpu_count() or 1))
    return parse_cpu_list(text)


def split_cpus(cpus: list[int] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Disjoint (engine, load generator) CPU sets: up to 2 for the engine, the rest for the load."""
    cpus = sorted(cpus if cpus is not None else online_cpus())
    if len(cpus) < 2:
        return tuple(cpus), tuple(cpus)
    engine = min(2, len(cpus) // 2)
    return tuple(cpus[-engine:]), tuple(cpus[:-engine])


def background(cpus: tuple[int, ...] | None = None) -> None:
    """Off the engines' CPUs and SCHED_IDLE (inherited by children, e.g. Dagster run workers)."""
    os.sched_setaffinity(0, cpus or split_cpus()[1])
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


@contextlib.contextmanager
def in_background() -> Iterator[None]:
    """``background`` for the block, then this thread's affinity and normal scheduling again."""
    before = os.sched_getaffinity(0)
    background()
    try:
        yield
    finally:
        foreground(tuple(before))


def foreground(cpus: tuple[int, ...] | None = None) -> None:
    """Normal scheduling at nice 0 (needs root to leave SCHED_IDLE or lower a nice value)."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, 0)


@contextlib.contextmanager
def placed(cpus: tuple[int, ...], every_thread: bool = False):
    """Run a block in the foreground on ``cpus``, then restore this process's placement.

    ``every_thread`` moves the process's other threads too (the judge's): a Dagster run worker's
    log, event and heartbeat threads would otherwise wake on an engine's CPU (a run container is
    not started in the background, as ``quantcraft up``'s children are) and the judge would
    measure its own process as interference.
    """
    affinity = os.sched_getaffinity(0)
    policy = os.sched_getscheduler(0)
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    others: dict[int, set[int]] = {}
    for tid in map(int, os.listdir("/proc/self/task") if every_thread else ()):
        with contextlib.suppress(OSError):  # a thread that has just ended
            others[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
    foreground(cpus)
    try:
        yield
    finally:
        for tid, before in others.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, before)
        os.sched_setaffinity(0, affinity)
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def _threads() -> Iterator[int]:
    """Every thread on the host this process can see (``/proc/<pid>/task/<tid>``)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):  # gone meanwhile
                yield from (int(task.name) for task in (proc / "task").iterdir())


@contextlib.contextmanager
def cleared(cpus: tuple[int, ...]) -> Iterator[int]:
    """Every other thread that may run elsewhere moved off ``cpus`` for the block; yields how many.

    Given a judging slot's CPUs (engine and load generator), the host's housekeeping (its agents,
    ``kdamond``, Docker, any unplaced process) runs elsewhere while a trial is timed (other slots
    clear theirs when they time one). Measured on this 2-core VM with a variant that cleared the
    engine's CPU alone (``bench/fairness_bench.py --clearing 6``, every trial counted): the
    engine's interference fell from a median of 0.44 % (21 of 36 trials within the 0.5 % bound)
    to 0.01 % (36 of 36), but the housekeeping then ran beside the load generator, which sent
    milliseconds late: phase C's p99 rose from 117 µs to 3.3 ms. Hence the slot's CPUs, both of
    them, and only where the host has others: on 2 cores nothing may run elsewhere, nothing moves.

    Only threads that may also run elsewhere move: per-CPU kernel threads (the kernel refuses),
    and anything pinned within ``cpus`` (this judge, its load generator, other slots' judgings
    on theirs), stay. Afterwards each moved thread gets back exactly the CPUs taken from it, added
    to whatever its affinity is then: judgings on disjoint slots clearing and restoring in any
    order leave every thread as it was. Needs CAP_SYS_NICE for other users' threads (the judge
    runs as root); a judge that cannot see the host's processes (a container's own pid namespace)
    clears only what it sees.
    """
    slot = set(cpus)
    taken: dict[int, set[int]] = {}
    for tid in _threads():
        with contextlib.suppress(OSError):  # ended, a per-CPU kernel thread, or not ours to move
            allowed = os.sched_getaffinity(tid)
            if allowed & slot and allowed - slot:
                os.sched_setaffinity(tid, allowed - slot)
                taken[tid] = allowed & slot
    try:
        yield len(taken)
    finally:
        for tid, given_back in taken.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, os.sched_getaffinity(tid) | given_back)
