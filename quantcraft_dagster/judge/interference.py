"""Interference: the judge's evidence that a trial measured the engine alone.

The send-lag guard catches a load generator that was held up; nothing on the load generator's
side sees the engine's CPU taken away. Yet on this 2-core VM the correct engine's phase C p99
moved between 21 µs and 3.8 ms from one trial to the next, while the judge sent on time
(send-lag p99 ≤ 1 µs): kernel threads, the VM's agent and other tenants' work ran on the engine's
CPU for 3–31 ms per 0.7 s trial, and a single stall of a few ms is 1 % of a phase C trial's orders.

So the judge measures two things over the replay and keeps the smaller:

- foreign time: the busy time of the engine's CPUs minus the engine's own CPU time (its cgroup),
  i.e. time something else held them. The engine cannot inflate it: its threads count in its
  cgroup. Busy time comes from cpuidle's per-state residency (µs, every idle state including
  polling, on bare metal and KVM guests alike): busy = elapsed − idle. A host without cpuidle
  falls back to ``/proc/stat`` (10 ms ticks: coarse, but honest);
- run delay: the time the engine's threads waited, runnable, for a CPU (``/proc/<tid>/schedstat``,
  CONFIG_SCHED_INFO). Foreign work while the engine sleeps costs it nothing, and an engine with
  more busy threads than CPUs delays itself: only what both see is the host's doing.

A closed-loop trial with more than a small bound of it is invalid and re-run (``core.trial``), like
a late send. An open-loop trial is timed order by order, and a share over the whole replay says
too little there: on this VM the engine's many short wake-ups alone add up to 0.7 % of a phase C
trial, harmless, while a few 2–4 ms runs of the VM's agent (pid 1, nice −10) and DAMON's kdamond on
the engine's CPU (seen with ftrace) decide its p99. So the load generator also samples the same
two quantities between its sends (:class:`StallWatch`), and the judge finds *when* the host held
the engine off its CPU: the orders in flight then are the host's, not the engine's (``core.trial``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox import RunningEngine

CPU_ROOT = Path("/sys/devices/system/cpu")
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _idle_ns(cpu: int) -> int | None:
    states = sorted((CPU_ROOT / f"cpu{cpu}" / "cpuidle").glob("state*/time"))
    if not states:
        return None
    return sum(int(p.read_text()) for p in states) * 1_000


def _stat_busy_ns(cpus: tuple[int, ...]) -> int:
    """Busy ticks of ``cpus`` from /proc/stat (every field but idle and iowait)."""
    busy = 0
    wanted = {f"cpu{c}" for c in cpus}
    with open("/proc/stat") as fh:
        for line in fh:
            name, *fields = line.split()
            if name in wanted:
                ticks = [int(f) for f in fields]
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy * _TICK_NS


def busy_ns(cpus: tuple[int, ...]) -> int:
    """Busy time of ``cpus`` up to now (only differences mean anything): elapsed minus idle where
    cpuidle reports it, else /proc/stat."""
    now = time.monotonic_ns()
    idle = [_idle_ns(c) for c in cpus]
    known = [i for i in idle if i is not None]
    if len(known) < len(idle):
        return _stat_busy_ns(cpus)
    return now * len(cpus) - sum(known)


def run_delay_ns(pids: Iterable[int]) -> int:
    """Time every thread of ``pids`` spent runnable but waiting for a CPU, so far."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[1])
    return total


def task_cpu_ns(task: Path) -> int:
    """CPU time a thread (``/proc/<pid>/task/<tid>``) has run so far; 0 once it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((task / "schedstat").read_text().split()[0])
    return 0


class EngineOfUid:
    """An engine as seen from a pid namespace it shares (the Docker sandbox's probe): its
    processes are those of its uid, which nothing else in the namespace runs as. Its CPU time is
    what its live threads have run (no cgroup is visible from there); a thread that ended during
    the replay takes its time with it, which can only raise the foreign time, and the meter keeps
    the smaller of that and the run delay."""

    def __init__(self, uid: int, proc: Path = Path("/proc")) -> None:
        self.uid, self.proc = uid, proc

    def pids(self) -> set[int]:
        found = set()
        for status in self.proc.glob("[0-9]*/status"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                uids = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
                if int(uids.split()[1]) == self.uid:  # the real uid: no capability can change it here
                    found.add(int(status.parent.name))
        return found

    def cpu_ns(self) -> int:
        return sum(task_cpu_ns(task) for pid in self.pids() for task in self.proc.glob(f"{pid}/task/*"))


STALL_SAMPLE_NS = 250_000
"""How often the load generator samples the engine's CPUs in an open loop."""


@dataclass(frozen=True, slots=True)
class WatchFiles:
    """What a stall watch reads: the idle-time files of the engine's CPUs (empty where cpuidle is
    missing: the samples then carry no idle time) and each engine thread's ``schedstat``."""

    cpus: tuple[int, ...]
    idle: tuple[str, ...]
    tasks: tuple[str, ...]
    tids: frozenset[int]

    @classmethod
    def of(cls, cpus: Iterable[int], pids: Iterable[int]) -> WatchFiles:
        cpus = tuple(cpus)
        has_idle = bool(cpus) and all(any((CPU_ROOT / f"cpu{c}" / "cpuidle").glob("state*")) for c in cpus)
        idle = [str(p) for c in cpus for p in sorted((CPU_ROOT / f"cpu{c}" / "cpuidle").glob("state*/time"))]
        tids = _tids(pids)
        return cls(
            cpus,
            tuple(idle) if has_idle else (),
            tuple(f"/proc/{t}/schedstat" for t in sorted(tids)),
            frozenset(tids),
        )

    def covers(self, pids: Iterable[int]) -> bool:
        """Whether every thread of ``pids`` (the engine's, now) was watched. One started since ran
        on the engine's CPUs unwatched, so its CPU time would look like the host's: an engine
        that forks or spawns threads mid-replay is not watched order by order."""
        return _tids(pids) <= self.tids


class StallWatch:
    """The engine's CPUs and threads, sampled by the load generator between two sends.

    Each sample is (time, idle time of the engine's CPUs or None, the engine's CPU time, its run
    delay), all in ns; ``core.trial.host_stalls`` turns consecutive samples into the windows in
    which other work held the engine off its CPUs. The files are opened once and re-read with
    ``pread`` (about 2 µs a sample here), so sampling every quarter millisecond costs the sender
    nothing it would notice. A thread that ends keeps its last figures; one started after the
    watch began voids it (:meth:`covers`).
    """

    def __init__(self, cpus: Iterable[int], pids: Iterable[int], interval_ns: int = STALL_SAMPLE_NS) -> None:
        self.files = WatchFiles.of(cpus, pids)
        self.ncpus, self.interval_ns, self.tids = len(self.files.cpus), interval_ns, self.files.tids
        self.idle_fds = [os.open(p, os.O_RDONLY) for p in self.files.idle]
        self.task_fds = []
        for path in self.files.tasks:
            with contextlib.suppress(OSError):
                self.task_fds.append(os.open(path, os.O_RDONLY))
        self.last = [(0, 0)] * len(self.task_fds)
        self.samples: list[tuple[int, int | None, int, int]] = []
        self.next_ns = 0

    def sample(self) -> None:
        now = time.perf_counter_ns()  # CLOCK_MONOTONIC, the clock of the orders' stamps
        idle = sum(int(os.pread(fd, 32, 0)) for fd in self.idle_fds) * 1_000 if self.idle_fds else None
        for k, fd in enumerate(self.task_fds):
            with contextlib.suppress(OSError, ValueError, IndexError):  # ended: its last figures stand
                ran, waited = os.pread(fd, 96, 0).split()[:2]
                self.last[k] = (int(ran), int(waited))
        self.samples.append((now, idle, sum(r for r, _ in self.last), sum(w for _, w in self.last)))
        self.next_ns = now + self.interval_ns

    def close(self) -> None:
        for fd in (*self.idle_fds, *self.task_fds):
            os.close(fd)


def _tids(pids: Iterable[int]) -> set[int]:
    return {int(task.name) for pid in pids for task in Path(f"/proc/{pid}/task").glob("[0-9]*")}


class Meter:
    """Interference with one engine: ``mark()`` at the replay's start and end, then ``ns()``."""

    def __init__(self, cpus: tuple[int, ...], engine: RunningEngine | EngineOfUid) -> None:
        self.cpus, self.engine = cpus, engine
        self.marks: list[tuple[int, int, int]] = []

    def mark(self) -> None:
        own = self.engine.cpu_ns()
        self.marks.append((busy_ns(self.cpus), own, run_delay_ns(self.engine.pids())))

    def ns(self) -> int | None:
        """min(foreign time, run delay) between the first and last marks; None without two."""
        if len(self.marks) < 2:
            return None
        (busy0, cpu0, delay0), (busy1, cpu1, delay1) = self.marks[0], self.marks[-1]
        return max(0, min(busy1 - busy0 - (cpu1 - cpu0), delay1 - delay0))
