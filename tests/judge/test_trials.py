"""Trials on the real judge: a stalled load generator is caught and re-run, never scored; a
client-bound phase B is flagged; a judge that cannot get valid trials gives up as its own failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from quantcraft_dagster.core.trial import ValidityConfig
from quantcraft_dagster.judge import judging
from quantcraft_dagster.judge.config import JudgeConfig
from quantcraft_dagster.judge.errors import InfrastructureError
from quantcraft_dagster.judge.judging import judge_binary
from tests import servers

from .helpers import assert_nothing_left

QUICK = JudgeConfig(profile="quick")


def qcload_pids() -> list[int]:
    """This judge's native clients (qcload, which does the load generator's sending): descendants
    of this process, whatever starts them in between, found through each process's children
    file, a few reads a poll (a walk over all of /proc, while qcload held the CPU at nice -20,
    could outlast a whole quick replay)."""
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
            if pid != os.getpid() and b"qcload" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def test_a_stalled_load_generator_makes_the_trial_invalid_and_it_is_run_again(engines):
    stalled: list[int] = []
    watchers: list[threading.Thread] = []

    def stall() -> None:
        """The sender stopped 0.1 s into its replay, for 0.1 s: 600 orders late by up to 100 ms."""
        # its replay starts at once; on a timeout nothing is stalled and the test says so. As
        # urgent as the load generator (nice -20), or it is starved on the CPU they share.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -20)
        pids = servers.wait_for(qcload_pids, 10, "this judge's qcload", every=0.01)
        time.sleep(0.1)  # the open loop is replaying now (3,000 orders over 0.5 s)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        time.sleep(0.1)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        stalled.extend(pids)

    def stall_first_phase_c(phase: str, done: int, total: int, note: str) -> None:
        # Announced before the engine starts; the judge reads its load generator's lines late
        # on purpose (it sleeps through the replay), so the watch starts here.
        if phase == "C" and note.startswith("starting") and not watchers:
            watchers.append(threading.Thread(target=stall, daemon=True))
            watchers[0].start()

    v = judge_binary(engines / "engine", QUICK, progress=stall_first_phase_c).verdict
    assert stalled, "the test never caught the load generator"
    assert v.status == "finished", v.reason
    reasons = v.invalid_trials["C"]
    late = ("send-lag p99", "missed its rate", "held up")  # its late orders are left out, too many
    assert reasons and any(why in reasons[0] for why in late), reasons
    counted = v.trials["C"]
    assert len(counted) == 3  # three valid trials despite the discarded one
    bound = QUICK.validity.max_send_lag_p99_us
    assert all(t.send_lag_p99_us <= bound for t in counted)
    obj = v.to_obj()["phases"]["C"]
    assert obj["invalid_trials"]["count"] == len(reasons) and len(obj["trials"]) == 3
    assert_nothing_left()


class Hog:
    """Work that takes the engine's CPU during replays of a phase, as the host's interrupts and
    real-time kernel threads do: ``SCHED_FIFO`` in the root cpu group, which no cgroup weight
    outranks (a nice -20 hog in another session yields to the engine's weight, as the host's
    agents now do). Started with the engine and ready (pinned, real-time) before the judge goes on;
    released when the engine is healthy, it spins ``seconds`` after ``delay`` seconds. The delay
    puts the spin inside the replay: spinning at once, it held up the load generator's connection
    set-up instead, and the replay began after it. Each spin's window is reported (the load
    generator's clock, CLOCK_MONOTONIC), so a test knows which orders it held up."""

    SCRIPT = """
import os, sys, time
for root in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup"):  # out of the judge's group: root may be RT
    try:
        open(root + "/cgroup.procs", "w").write(str(os.getpid()))
        break
    except OSError:
        pass
os.sched_setaffinity(0, {int(sys.argv[1])})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
print("ready", flush=True)
sys.stdin.readline()
time.sleep(float(sys.argv[3]))
start = time.perf_counter_ns()
pulse = float(sys.argv[4]) * 1e9
while time.perf_counter_ns() - start < float(sys.argv[2]) * 1e9:
    if pulse and (time.perf_counter_ns() - start) // pulse % 2:
        time.sleep(pulse / 1e9)  # pulses: the engine gets every other one
print(start, time.perf_counter_ns(), flush=True)
"""

    def __init__(
        self, times: int, phase: str = "C", seconds: float = 0.1, delay: float = 0.0, pulse: float = 0.0
    ) -> None:
        self.left, self.procs, self.phase = times, [], phase
        self.seconds, self.delay, self.pulse = seconds, delay, pulse

    def __call__(self, phase: str, done: int, total: int, note: str) -> None:
        if phase != self.phase or not self.left:
            return
        if note.startswith("starting"):
            cpu = str(QUICK.engine_cpus[0])
            cmd = [
                sys.executable,
                "-c",
                self.SCRIPT,
                cpu,
                str(self.seconds),
                str(self.delay),
                str(self.pulse),
            ]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline() == "ready\n"
            self.procs.append(proc)
        elif note.startswith("engine healthy"):
            self.procs[-1].stdin.write("go\n")
            self.procs[-1].stdin.close()
            self.left -= 1

    def wait(self) -> list[tuple[int, int]]:
        """The windows the hog spun in (a hog never released, its engine never healthy, has none)."""
        windows = []
        for proc in self.procs:
            if not proc.stdin.closed:
                proc.stdin.close()
            out = proc.stdout.read()
            proc.wait()
            if out.split():
                start, end = map(int, out.split())
                windows.append((start, end))
        return windows


@pytest.mark.parametrize(
    ("phase", "reasons_of_the_host"),
    [
        ("B", ("kept the engine off its CPUs",)),  # a share of the replay
        # its orders; or, in 2 of 5 runs seen, the judge's sends ~5 ms late while the engine
        # read nothing for 0.1 s (named first, core.trial.invalid_reason): the host's either way
        ("C", ("held up", "judge sent late")),
    ],
)
def test_work_on_the_engines_cpu_makes_the_trial_invalid_and_it_is_run_again(
    engines, phase, reasons_of_the_host
):
    # Inside C's 0.5 s replay; B's lasts a few ms from a moment after health, when a hog that held
    # the CPU throughout would delay its start instead: every other millisecond for 0.1 s.
    hog = Hog(times=1, phase=phase, delay=0.1) if phase == "C" else Hog(times=1, phase=phase, pulse=0.001)
    v = judge_binary(engines / "engine", QUICK, progress=hog).verdict
    hog.wait()
    assert v.status == "finished", v.reason
    reasons = v.invalid_trials[phase]
    assert reasons and any(why in reasons[0] for why in reasons_of_the_host), reasons
    validity = QUICK.validity
    assert len(v.trials["C"]) == len(v.trials["B"]) == 3
    assert all(t.interference <= validity.max_interference for t in v.trials["B"])
    assert all(t.disturbed <= validity.max_disturbed * t.orders for t in v.trials["C"])
    assert v.phases["A"].interference is None and v.phases["A"].disturbed is None
    assert_nothing_left()


def test_a_short_stall_on_the_engines_cpu_is_left_out_of_the_latency_not_charged(engines):
    """5 ms of other work on the engine's CPU in every phase C trial: the orders it held up are left
    out, and the trial counts. (Its p99 is not asserted: on this VM other stalls come and go in
    the same trial.)"""
    hog = Hog(times=5, seconds=0.005, delay=0.2)  # 0.2 s into a 0.5 s replay
    result = judge_binary(engines / "engine", replace(QUICK, trials=1), progress=hog)
    windows = hog.wait()
    v = result.verdict
    assert v.status == "finished", v.reason
    (trial,) = v.trials["C"]
    assert v.to_obj()["phases"]["C"]["disturbed"] == trial.disturbed
    rows = result.telemetry.to_table().to_pandas()
    c = rows[(rows.phase == "C") & (rows.trial == 0)]
    assert int(c.disturbed.sum()) == trial.disturbed
    # The hog spun inside this replay. It holds the engine for the first 2-3 ms of its spin only
    # (the kernel then lets the waking engine preempt it): the orders in flight in its window
    # that took many times the trial's median latency are the ones it held up: left out (all
    # but a stray one at the edge of a sampling window).
    ((start, end),) = [w for w in windows if c.intended_ns.min() < w[0] and w[1] < c.recv_ns.max()]
    latency = c.recv_ns - c.intended_ns
    in_window = (c.intended_ns <= end) & (c.recv_ns >= start)
    held_up = in_window & (latency > 5 * latency.median())
    assert held_up.sum() >= 5, c[in_window]  # the premise: it did hold the engine up
    assert c.disturbed[held_up].mean() >= 0.9, c[held_up]
    assert_nothing_left()


class Interference:
    """Replaces the interference the judge measured over each phase B replay with a scripted
    share: real engines and replays, only the figure the control rule reads is chosen (phase C's:
    none, and not watched order by order), so each line-up of the rule is tested exactly, not left
    to whether a hog registered here. Each order leaves on time (sent = intended): the host's
    send lag spends no re-run either."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, contestant: list[float], control: list[float]
    ) -> None:
        self.script = {"contestant": list(contestant), "control": list(control)}
        real = judging.run_phase

        def scripted(sandbox, binary, bundle, config, progress, timed=False):
            result, engine_exit = real(sandbox, binary, bundle, config, progress, timed)
            result.sent_ns = list(result.intended_ns)
            if bundle.spec.phase == "C":
                result.interference, result.stall_samples = 0.0, []
            elif bundle.spec.phase == "B":
                who = "control" if binary == config.control_engine else "contestant"
                result.interference = self.script[who].pop(0)
            return result, engine_exit

        monkeypatch.setattr(judging, "run_phase", scripted)


DISTURBED, CLEAN = 0.2, 0.0
HALF_BOUND = ValidityConfig().max_interference * 0.6  # under the bound, over half of it


OWN, RERUN, HOST = "the engine's own", "the re-run counts", "infrastructure failure"


@pytest.mark.parametrize(
    ("contestant", "control", "expected"),
    [
        # the trial and its re-run disturbed, the control clean, the engine disturbed again, the
        # control clean again: the engine's own doing, measured as it is
        ([DISTURBED, DISTURBED, DISTURBED], [CLEAN, CLEAN], OWN),
        # ... but the engine run again clean: a burst that came and went, and a valid trial
        ([DISTURBED, DISTURBED, CLEAN], [CLEAN], RERUN),
        # ... but the second control disturbed, and run again too: the host is noisy now
        ([DISTURBED, DISTURBED, DISTURBED], [CLEAN, DISTURBED, DISTURBED], HOST),
        # the engine run again disturbed over half the bound only: still its own churn
        ([DISTURBED, DISTURBED, HALF_BOUND], [CLEAN, CLEAN], OWN),
        # ... with the host noisy after it: not shown to be its own, but that run is within bounds
        ([DISTURBED, DISTURBED, HALF_BOUND], [CLEAN, DISTURBED, DISTURBED], RERUN),
        # the first control disturbed twice: nothing is learnt, the engine is not run again
        ([DISTURBED, DISTURBED], [DISTURBED, DISTURBED], HOST),
        # the first control disturbed once (work the engine left behind), clean run again
        ([DISTURBED, DISTURBED, DISTURBED], [DISTURBED, CLEAN, CLEAN], OWN),
        # no control engine: nothing can tell the engine's churn from the host's
        ([DISTURBED, DISTURBED], None, HOST),
    ],
    ids=[
        "follows-the-engine",
        "burst-passed",
        "host-noisy-after",
        "half-bound-again",
        "half-bound-again-host-noisy-after",
        "host-noisy-before",
        "control-clean-on-its-second-run",
        "no-control",
    ],
)
def test_interference_counts_as_the_engines_own_only_when_it_follows_the_engine(
    engines, monkeypatch, tmp_path, contestant, control, expected
):
    cfg = replace(QUICK, trials=1, validity=ValidityConfig(max_reruns=1))
    if control is None:
        cfg, control = replace(cfg, control_engine=None), []
    engine = tmp_path / "engine"  # the correct engine, at another path than the judge's control
    shutil.copy2(engines / "engine", engine)
    script = Interference(monkeypatch, contestant, control)
    if expected == HOST:
        with pytest.raises(InfrastructureError, match="kept the engine off its CPUs"):
            judge_binary(engine, cfg)
    else:
        v = judge_binary(engine, cfg).verdict
        assert v.status == "finished", v.reason
        counted = v.trials["B"][0].interference
        if expected == OWN:  # the disturbed trial counts, with the control's figure beside it
            assert counted == pytest.approx(DISTURBED) and v.control_interference == CLEAN
        else:  # the run between the controls counts; nothing was shown to be the engine's own
            assert counted == pytest.approx(contestant[-1]) and v.control_interference is None
            assert len(v.invalid_trials["B"]) == 2
    assert script.script == {"contestant": [], "control": []}  # each run the rule asked for, no more
    assert_nothing_left()


def test_a_judge_that_never_keeps_up_fails_as_infrastructure_not_as_a_score(engines):
    never = replace(
        QUICK, validity=ValidityConfig(max_send_lag_p99_us=0.0, max_interference=1.0, max_reruns=1)
    )
    with pytest.raises(InfrastructureError, match="no valid trial of phase C"):
        judge_binary(engines / "engine", never)
    assert_nothing_left()


def test_after_the_engine_failed_a_phase_the_judge_cannot_time_is_left_unscored(engines, monkeypatch):
    """Once the engine has failed (here: its last phase A report goes missing), its verdict is
    decided; a phase the judge then cannot vouch for (a judge that never keeps up, the control
    disturbed as well) goes unscored and says so, instead of failing the judging: a fork bomb that
    starves itself and makes the judge late while the host is noisy still gets its verdict."""
    real = judging.run_phase

    def last_a_report_lost(sandbox, binary, bundle, config, progress, timed=False):
        result, engine_exit = real(sandbox, binary, bundle, config, progress, timed)
        if bundle.spec.phase == "A":
            last = len(result.received) - 1
            result.received[last] = None
            result.missing_reasons[last] = "no report within 5 s of an order (engine hung or too slow)"
        return result, engine_exit

    monkeypatch.setattr(judging, "run_phase", last_a_report_lost)
    never = replace(QUICK, validity=ValidityConfig(max_send_lag_p99_us=0.0, max_reruns=1))
    v = judge_binary(engines / "engine", never).verdict
    assert v.status == "failed" and v.reason.startswith("phase A: no report within 5 s"), v.reason
    assert "phase C not scored (the judge could not vouch for its trials)" in v.reason
    assert "C" not in v.trials and v.invalid_trials["C"] and v.scores is not None
    assert_nothing_left()


def test_phase_b_against_a_trivial_engine_is_client_limited_and_a_slow_one_is_not(engines):
    """The rule, shown with the picows reference client, which a trivial engine outpaces; the
    native client waits for that engine's reports more than it works."""
    one = replace(QUICK, trials=1)
    fast = judge_binary(engines / "trivial", replace(one, loadgen_client="picows")).verdict
    assert fast.phases["B"].client_limited and fast.to_obj()["phases"]["B"]["client_limited"] is True
    native = judge_binary(engines / "trivial", one).verdict
    assert native.phases["B"].client_busy < fast.phases["B"].client_busy
    assert native.phases["B"].orders_per_s > fast.phases["B"].orders_per_s
    slow = judge_binary(engines / "slow", one).verdict
    assert not slow.phases["B"].client_limited
    assert slow.phases["B"].client_busy < fast.phases["B"].client_busy
    # the engine's own CPU time per order comes from its cgroup
    assert slow.phases["B"].cpu_us_per_order > 0 and fast.phases["B"].cpu_us_per_order > 0
