"""Interference: the host's figures the judge reads, against processes whose CPU use is known."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from quantcraft_dagster.judge import interference
from quantcraft_dagster.judge.cpus import split_cpus

SPIN = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
t = time.time()
while time.time() - t < float(sys.argv[2]):
    pass
"""


def spin(cpu: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SPIN, str(cpu), str(seconds)])


def cpu_ns(pid: int) -> int:
    return int(open(f"/proc/{pid}/schedstat").read().split()[0])


def test_a_busy_cpu_shows_as_busy_time_and_two_spinners_on_one_cpu_delay_each_other():
    cpu = split_cpus()[0][0]
    before = interference.busy_ns((cpu,))
    start = time.monotonic_ns()
    a, b = spin(cpu, 0.4), spin(cpu, 0.4)
    time.sleep(0.2)
    delay = interference.run_delay_ns([a.pid, b.pid])
    a.wait(), b.wait()
    wall = time.monotonic_ns() - start
    busy = interference.busy_ns((cpu,)) - before
    assert busy > 0.6 * wall  # two spinners kept it busy for most of the interval
    assert delay > 0.05e9  # each waited while the other ran


def test_an_engine_is_found_by_its_uid_with_its_cpu_time():
    """What the Docker sandbox's probe meters: every process of the engine's uid and the CPU time
    of their threads, and nothing of this judge's (root) processes."""
    nobody = 65534
    busy_loop = "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done"  # this judge's python is root's
    spinner = subprocess.Popen(["sh", "-c", busy_loop], user=nobody, group=nobody, extra_groups=[])
    try:
        engine = interference.EngineOfUid(nobody)
        time.sleep(0.3)
        assert spinner.pid in engine.pids() and os.getpid() not in engine.pids()
        own = cpu_ns(spinner.pid)
        assert engine.cpu_ns() >= own > 0.1e9
    finally:
        spinner.wait()
    assert spinner.pid not in engine.pids()


class FakeEngine:
    """Stands for a sandboxed engine: one spinning process (its CPU time from schedstat)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def cpu_ns(self) -> int:
        return cpu_ns(self.proc.pid)

    def pids(self) -> set[int]:
        return {self.proc.pid}


def test_meter_charges_the_host_for_a_competitor_and_not_for_the_engine_alone():
    cpu = split_cpus()[0][0]
    alone = FakeEngine(spin(cpu, 0.5))
    meter = interference.Meter((cpu,), alone)
    time.sleep(0.1)
    meter.mark()
    time.sleep(0.3)
    meter.mark()
    alone.proc.wait()
    quiet = meter.ns()

    engine = FakeEngine(spin(cpu, 0.5))
    meter = interference.Meter((cpu,), engine)
    time.sleep(0.1)
    meter.mark()
    competitor = spin(cpu, 0.2)
    time.sleep(0.3)
    meter.mark()
    engine.proc.wait(), competitor.wait()
    contended = meter.ns()
    assert contended - quiet > 0.04e9  # about half of the competitor's 0.2 s, beyond the host's own
