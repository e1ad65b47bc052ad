"""Interference: the host's figures the judge reads, against processes whose CPU use is known."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantcraft_dagster.core.trial import replay_interference
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
    finally:
        spinner.wait()
    assert spinner.pid not in engine.pids()


def replay_share(cpu: int, engine: list[int], seconds: float, usage: str | None) -> float:
    """What the load generator measures over a replay of ``seconds`` of an engine of ``engine``
    pids on ``cpu``: its first and last samples' share (``core.trial.replay_interference``)."""
    watch = interference.StallWatch(interference.WatchFiles.of((cpu,), engine, usage))
    try:
        watch.sample()
        time.sleep(seconds)
        watch.sample()
    finally:
        watch.close()
    share = replay_interference(watch.samples[0], watch.samples[-1], 1)
    assert share is not None
    return share


@pytest.mark.parametrize("usage", ["tasks", "cpuidle"])
def test_the_host_is_charged_for_a_competitor_and_not_for_an_engine_alone_or_its_own_threads(usage):
    """Every task's CPU time where the host has it (cgroup v1), busy time from cpuidle where it
    has not (v2): a competitor on the engine's CPU shows in both; two busy threads of the engine on
    its one CPU wait for each other, which is the engine's own doing."""
    if usage == "tasks" and interference.usage_file() is None:
        pytest.skip("a cgroup v2 host: no per-CPU CPU time of every task")
    path = interference.usage_file() if usage == "tasks" else None
    cpu = split_cpus()[0][0]
    alone = spin(cpu, 0.5)
    time.sleep(0.1)
    quiet = replay_share(cpu, [alone.pid], 0.3, path)
    alone.wait()

    engine = spin(cpu, 0.5)
    time.sleep(0.1)
    competitor = spin(cpu, 0.2)
    contended = replay_share(cpu, [engine.pid], 0.3, path)
    engine.wait(), competitor.wait()

    a, b = spin(cpu, 0.5), spin(cpu, 0.5)
    time.sleep(0.1)
    own_threads = replay_share(cpu, [a.pid, b.pid], 0.3, path)
    a.wait(), b.wait()
    assert (
        contended - quiet > 0.15
    )  # about half of the competitor's 0.2 s of the 0.3 s, beyond the host's own
    assert own_threads < 0.05


def test_threads_started_after_the_watch_are_found_and_their_time_added():
    """An engine that starts a process mid-replay: it is new to the watch, and all its CPU time
    falls after the watch began."""
    cpu = split_cpus()[0][0]
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; time.sleep(0.3); "
         f"subprocess.run([sys.executable, '-c', {SPIN!r}, '{cpu}', '0.3'])"]
    )  # fmt: skip
    try:
        time.sleep(0.1)
        files = interference.WatchFiles.of((cpu,), [parent.pid])
        time.sleep(0.4)
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        pids = {parent.pid, *map(int, children)}
        new = files.new_threads(pids)
        assert new and parent.pid not in new
        sample = interference.with_threads((0, None, 0, 0, None), new)
        assert sample[2] > 0.05e9  # the spinner's CPU time so far
    finally:
        parent.wait()
