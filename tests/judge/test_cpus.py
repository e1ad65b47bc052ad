"""CPU placement: a judge takes every thread of its process off the engine's CPUs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from quantcraft_dagster.judge.cpus import cleared, placed, split_cpus


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_every_thread_moves_with_the_judge_and_comes_back():
    """A thread started before the judging (a Dagster log or heartbeat thread) is moved too, and
    everything gets its placement back afterwards; without ``every_thread`` only the caller moves."""
    engine, loadgen = split_cpus()
    started, stop = threading.Event(), threading.Event()
    tids: list[int] = []

    def worker() -> None:
        tids.append(threading.get_native_id())
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(5)
    (tid,) = tids
    before = os.sched_getaffinity(tid)
    try:
        with placed(loadgen):
            assert os.sched_getaffinity(tid) == before
        with placed(loadgen, every_thread=True):
            assert os.sched_getaffinity(tid) == set(loadgen) == os.sched_getaffinity(0)
            assert not os.sched_getaffinity(tid) & set(engine)
        assert os.sched_getaffinity(tid) == before
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_cleared_moves_everything_else_off_the_engine_cpus_and_gives_back_only_what_it_took():
    """Another process free to run anywhere leaves the engine's CPUs for the block; one pinned to
    them alone stays (nowhere else to go); afterwards each gets back the CPUs taken from it, on
    top of any change made meanwhile (another slot's judging clearing and restoring its own)."""
    engine, loadgen = split_cpus()
    every = set(engine) | set(loadgen)
    free = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    pinned = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.sched_setaffinity(free.pid, every)
        os.sched_setaffinity(pinned.pid, engine)
        with cleared(engine) as moved:
            assert moved >= 1
            assert os.sched_getaffinity(free.pid) == set(loadgen)
            assert os.sched_getaffinity(pinned.pid) == set(engine)
            os.sched_setaffinity(free.pid, {loadgen[0]})  # narrowed by someone else meanwhile
        assert os.sched_getaffinity(free.pid) == {loadgen[0], *engine}
        assert os.sched_getaffinity(pinned.pid) == set(engine)
    finally:
        for proc in (free, pinned):
            proc.kill()
            proc.wait()
