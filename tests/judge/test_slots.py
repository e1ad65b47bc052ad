"""Judging slots: disjoint CPU sets per host, one judging per slot across processes, released
when the holder dies (SIGKILL included)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from quantcraft_dagster.judge import cgroups
from quantcraft_dagster.judge.slots import Slot, host_slots, take_slot


def test_a_host_is_cut_into_disjoint_slots():
    assert host_slots([0, 1]) == [Slot((1,), (0,))]
    assert host_slots(list(range(4))) == [Slot((2, 3), (0, 1))]
    slots = host_slots(list(range(10)))  # 10 CPUs make 2 slots of 5
    assert slots == [Slot((3, 4), (0, 1, 2)), Slot((8, 9), (5, 6, 7))]
    every = [cpu for slot in slots for cpu in slot.cpus]
    assert sorted(every) == list(range(10))


def _hold(folder, slots, ready) -> None:
    with take_slot(folder, slots):
        ready.set()
        time.sleep(60)


def test_a_slot_is_held_by_one_process_and_freed_when_it_is_killed(tmp_path):
    slots = [Slot((1,), (0,))]
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(tmp_path, slots, ready))
    holder.start()
    assert ready.wait(10)
    taken = multiprocessing.Event()
    waiter = multiprocessing.Process(target=_hold, args=(tmp_path, slots, taken))
    waiter.start()
    assert not taken.wait(1.0), "two judgings on one slot"
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert taken.wait(5), "a killed holder kept its slot"
    waiter.kill()
    waiter.join()


def test_slots_of_another_shape_never_share_a_cpu(tmp_path):
    """Locks are per CPU: a worker configured with other slots still waits for a busy CPU."""
    with take_slot(tmp_path, [Slot((2, 3), (0, 1))]):
        free = multiprocessing.Event()
        other = multiprocessing.Process(target=_hold, args=(tmp_path, [Slot((3,), (4,))], free))
        other.start()
        assert not free.wait(1.0)
        other.kill()
        other.join()
    with take_slot(tmp_path, [Slot((3,), (4,))]) as slot:
        assert slot.cpus == (3, 4)


@pytest.mark.skipif(os.geteuid() != 0, reason="creates cgroups")
def test_a_dead_judgings_engine_group_is_emptied_and_removed_by_the_next_holder_of_its_cpus(tmp_path):
    """What a judge host's SIGKILL can leave: an engine group still holding the outer ``bwrap``
    (here a stand-in process). The next judging on those CPUs kills it and removes the group."""
    left = cgroups.create("engine-orphantest", cgroups.CgroupLimits(cpus=(1,)))
    other = cgroups.create("engine-othercpus", cgroups.CgroupLimits(cpus=(0, 1)))
    survivor = subprocess.Popen(["sleep", "60"])
    for path in left.procs_files():
        Path(path).write_text(str(survivor.pid))
    try:
        with take_slot(tmp_path, [Slot((1,), ())]):
            assert survivor.wait(5) == -signal.SIGKILL
            assert all(not d.exists() for d in left.dirs)
            assert all(d.exists() for d in other.dirs), "a group on CPUs outside the slot was touched"
    finally:
        survivor.kill()
        survivor.wait()
        left.remove()
        other.remove()
