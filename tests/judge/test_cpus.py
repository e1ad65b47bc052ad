"""CPU placement: a judge takes every thread of its process off the engine's CPUs."""

from __future__ import annotations

import os
import threading

import pytest

from quantcraft_dagster.judge.cpus import placed, split_cpus


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
