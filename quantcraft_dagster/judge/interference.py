"""Interference: the judge's evidence that a trial measured the engine alone.

The send-lag guard catches a load generator that was held up; nothing on the load generator's
side sees the engine's CPU taken away. Yet kernel threads, a VM's agent and other tenants' work
run on the engine's CPU for milliseconds at a time, and a single stall of a few ms is 1 % of a
phase C trial's orders.

So the load generator samples two quantities of the engine's CPUs and threads (a
:class:`StallWatch`, or ``qcload``'s own in C) as the replay starts, as it ends and, in an open
loop, between its sends:

- foreign time: the time other tasks ran on the engine's CPUs (``core.trial.foreign_ns``): every
  task's CPU time there from cgroup v1's root ``cpuacct.usage_percpu`` minus the engine's own;
  where the host has no such file (cgroup v2), busy time from cpuidle's per-state residency
  minus the engine's own, which also counts the CPUs' way in and out of idle;
- run delay: the time the engine's threads waited, runnable, for a CPU (``/proc/<tid>/schedstat``,
  CONFIG_SCHED_INFO). Foreign work while the engine sleeps costs it nothing, and an engine with
  more busy threads than CPUs delays itself: only what both see is the host's doing.

Over a closed-loop replay the smaller of the two, as a share of the replay, bounds the trial
(``core.trial.replay_interference``); in an open loop the samples between sends find *when* the
host held the engine off its CPU, and the orders in flight then are the host's, not the engine's
(``core.trial.host_stalls``). The edges are taken inside the replay loop: marks taken around the
load generator's process counted its start and teardown, and an idle period cpuidle had not yet
credited, as the host's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.trial import Sample

CPU_ROOT = Path("/sys/devices/system/cpu")
USAGE_FILE = "/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu"
"""cgroup v1's root cpuacct: every task's CPU time on each CPU, in ns (none on a v2 host)."""


def usage_file() -> str | None:
    """This host's :data:`USAGE_FILE` where it can be read, else None."""
    return USAGE_FILE if os.access(USAGE_FILE, os.R_OK) else None


def run_delay_ns(pids: Iterable[int]) -> int:
    """Time every thread of ``pids`` spent runnable but waiting for a CPU, so far."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[1])
    return total


class EngineOfUid:
    """An engine as seen from a pid namespace it shares (the Docker sandbox's probe): its
    processes are those of its effective uid, which nothing else in the namespace runs as but
    qctail, which keeps its output tail (``judge/tail.py``): its reading is the engine's cost."""

    def __init__(self, uid: int, proc: Path = Path("/proc")) -> None:
        self.uid, self.proc = uid, proc

    def pids(self) -> set[int]:
        found = set()
        for status in self.proc.glob("[0-9]*/status"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                uids = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
                if int(uids.split()[2]) == self.uid:  # no process here may change its uids any more
                    found.add(int(status.parent.name))
        return found


STALL_SAMPLE_NS = 250_000
"""How often the load generator samples the engine's CPUs in an open loop."""


@dataclass(frozen=True, slots=True)
class WatchFiles:
    """What a stall watch reads: the idle-time files of the engine's CPUs (empty where cpuidle is
    missing: the samples then carry no idle time), each engine thread's ``schedstat``, and the
    file of every task's CPU time per CPU (``usage``, None where there is none)."""

    cpus: tuple[int, ...]
    idle: tuple[str, ...]
    tasks: tuple[str, ...]
    tids: frozenset[int]
    usage: str | None = None

    @classmethod
    def of(cls, cpus: Iterable[int], pids: Iterable[int], usage: str | None = None) -> WatchFiles:
        cpus = tuple(cpus)
        has_idle = bool(cpus) and all(any((CPU_ROOT / f"cpu{c}" / "cpuidle").glob("state*")) for c in cpus)
        idle = [str(p) for c in cpus for p in sorted((CPU_ROOT / f"cpu{c}" / "cpuidle").glob("state*/time"))]
        tids = _tids(pids)
        return cls(
            cpus,
            tuple(idle) if has_idle else (),
            tuple(f"/proc/{t}/schedstat" for t in sorted(tids)),
            frozenset(tids),
            usage if cpus and max(cpus) < 64 else None,  # qcload's mask: the first 64 CPUs
        )

    def new_threads(self, pids: Iterable[int]) -> set[int]:
        """Threads of ``pids`` (the engine's, now) started since the watch began: they ran on the
        engine's CPUs unwatched, so an engine that forks or spawns threads mid-replay is not
        watched order by order (its time would look like the host's)."""
        return _tids(pids) - self.tids

    def tasks_ns(self, text: str) -> int | None:
        """The engine's CPUs' share of a usage file's text (one figure per CPU), None if short."""
        fields = text.split()
        if len(fields) <= max(self.cpus):
            return None
        return sum(int(fields[c]) for c in self.cpus)


def with_threads(sample: Sample, tids: Iterable[int]) -> Sample:
    """``sample`` with the CPU time and run delay of threads born after the watch began (all of
    theirs falls after it): what a replay's last sample missed of an engine that started threads."""
    ran = waited = 0
    for tid in tids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{tid}/schedstat").read_text().split()
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    now, idle, own, delay, tasks = sample
    return now, idle, own + ran, delay + waited, tasks


class StallWatch:
    """The engine's CPUs and threads, sampled by the load generator (the picows reference's; the
    native client samples the same files in C).

    Each sample is a ``core.trial.Sample``. The files are opened once and re-read with ``pread``
    (about 2 µs a sample here), so sampling every quarter millisecond costs the sender nothing it
    would notice. A thread that ends keeps its last figures.
    """

    def __init__(self, files: WatchFiles, interval_ns: int = STALL_SAMPLE_NS) -> None:
        self.files, self.interval_ns = files, interval_ns
        self.idle_fds = [os.open(p, os.O_RDONLY) for p in files.idle]
        self.usage_fd = os.open(files.usage, os.O_RDONLY) if files.usage else None
        self.task_fds = []
        for path in files.tasks:
            with contextlib.suppress(OSError):
                self.task_fds.append(os.open(path, os.O_RDONLY))
        self.last = [(0, 0)] * len(self.task_fds)
        self.samples: list[Sample] = []
        self.next_ns = 0

    def sample(self) -> None:
        now = time.perf_counter_ns()  # CLOCK_MONOTONIC, the clock of the orders' stamps
        idle = sum(int(os.pread(fd, 32, 0)) for fd in self.idle_fds) * 1_000 if self.idle_fds else None
        tasks = None
        if self.usage_fd is not None:
            tasks = self.files.tasks_ns(os.pread(self.usage_fd, 8192, 0).decode())
        for k, fd in enumerate(self.task_fds):
            with contextlib.suppress(OSError, ValueError, IndexError):  # ended: its last figures stand
                ran, waited = os.pread(fd, 96, 0).split()[:2]
                self.last[k] = (int(ran), int(waited))
        self.samples.append((now, idle, sum(r for r, _ in self.last), sum(w for _, w in self.last), tasks))
        self.next_ns = now + self.interval_ns

    def close(self) -> None:
        fds = (*self.idle_fds, *self.task_fds, *([self.usage_fd] if self.usage_fd is not None else []))
        for fd in fds:
            os.close(fd)


def _tids(pids: Iterable[int]) -> set[int]:
    return {int(task.name) for pid in pids for task in Path(f"/proc/{pid}/task").glob("[0-9]*")}
