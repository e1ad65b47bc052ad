"""Acceptance: the example engines judged end to end in the real sandbox over real WebSockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantcraft_dagster.judge.config import JudgeConfig
from quantcraft_dagster.judge.judging import judge_binary

from .helpers import FAST, assert_nothing_left


@pytest.mark.parametrize("profile", ["quick", "standard"])
def test_correct_engine_is_fully_correct(engines, profile):
    result = judge_binary(engines / "engine", JudgeConfig(profile=profile))
    v = result.verdict
    assert v.status == "finished", v.reason
    assert v.scores.correctness == 100.0
    assert v.book_match is True
    assert v.divergences == []
    assert v.fill_match_ratio == 1.0
    for name, phase in v.phases.items():
        assert phase.exact == phase.orders > 0, name
        assert phase.p99_us is not None and phase.orders_per_s > 0
    assert len(result.telemetry) == sum(p.orders for p in v.phases.values())
    frame = result.telemetry.to_table().to_pandas()
    assert frame["exact"].all() and (frame["recv_ns"] > 0).all()
    assert_nothing_left()


@pytest.mark.parametrize("engine", ["threaded_engine", "go_engine"])
def test_engines_written_like_contestants_are_fully_correct(engines, engine):
    """An I/O thread beside a matching thread, and Go's runtime (its threads and garbage
    collector, reports in bursts): judged once, like any submission, at the shipped bounds. Their
    threads wait for each other and their CPU goes in and out of idle; neither is the host's."""
    v = judge_binary(engines / engine, JudgeConfig(profile="quick")).verdict
    assert v.status == "finished", v.reason
    assert v.scores.correctness == 100.0 and v.book_match is True
    assert len(v.trials["B"]) == len(v.trials["C"]) == 3
    assert_nothing_left()


def test_a_naive_server_is_judged_in_every_trial(engines):
    """The protocol's port is the same for every engine of a judging, and the Docker sandbox's
    engines share one network namespace: nothing the judge did with the previous engine may leave
    that port in TIME_WAIT against the next one's ``bind`` without ``SO_REUSEADDR`` (this variant
    also closes every HTTP connection first, so the health checks' would, were they not reset)."""
    v = judge_binary(engines / "naive_server", JudgeConfig(profile="quick")).verdict
    assert v.status == "finished", v.reason
    assert v.scores.correctness == 100.0
    assert len(v.trials["B"]) == len(v.trials["C"]) == 3
    assert_nothing_left()


@pytest.mark.parametrize(
    ("variant", "phase_of_first", "mentions"),
    [
        ("lifo_priority", "A", "expected ("),
        ("never_cancel", "A", "status REJECTED, expected CANCELLED"),
        ("market_rests", "A", "status RESTING, expected CANCELLED"),
    ],
)
# The checker reads reports, whichever sandbox the engine ran in: Docker's path from the engine to
# the checker is what the correct engines above are judged through.
@pytest.mark.sandboxes("bubblewrap")
def test_broken_engines_lose_correctness_and_name_the_order(
    engines, sandbox_backend, variant, phase_of_first, mentions
):
    v = judge_binary(engines / variant, FAST).verdict
    assert v.status == "finished", v.reason
    assert v.scores.correctness < 100.0
    first = v.divergences[0]
    assert first.phase == phase_of_first and mentions in first.reason
    assert first.order_id == first.order["order_id"]
    assert first.order_id not in v.reason and "reports differ" in v.reason  # the reason is public
    assert first.expected != first.got


@pytest.mark.parametrize("name", ["empty", "big", "text", "script", "arm64", "library"])
@pytest.mark.sandboxes("bubblewrap")  # no sandbox starts at all
def test_bad_uploads_are_rejected_before_any_sandbox(tmp_path, engines, name):
    import time

    exe = (engines / "engine").read_bytes()
    data = {
        "empty": b"",
        "big": b"\x7fELF" + b"\0" * (60 * 2**20),
        "text": b"just text\n",
        "script": b"#!/bin/sh\nexec sleep 1\n",
        "arm64": exe[:18] + (183).to_bytes(2, "little") + exe[20:],
        "library": Path("/usr/lib/x86_64-linux-gnu/libz.so.1").read_bytes(),
    }[name]
    path = tmp_path / name
    path.write_bytes(data)

    class NoSandbox:
        def start(self, *_):
            raise AssertionError("a sandbox was started for a bad upload")

    start = time.perf_counter()
    v = judge_binary(path, FAST, sandbox=NoSandbox()).verdict
    assert time.perf_counter() - start < 1.0
    assert v.status == "rejected" and v.reason
