"""The submission sensor's upload limits and queue priorities, against both bucket backends.

Runs are created from the sensor's requests as the daemon would (not started yet), so the sensor counts
pending judgings from the instance exactly as in production.
"""

from __future__ import annotations

import dagster as dg
import pytest

from quantcraft_dagster import lifecycle

from .test_submission_sensor import resource, tick  # noqa: F401 - the fixture, with both backends


def enqueue(instance: dg.DagsterInstance, result: dg.SensorResult) -> list[dg.DagsterRun]:
    """The daemon's side of a tick: its observations stored, one pending run per request unless
    its run key has one."""
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    runs = []
    for request in result.run_requests:
        if instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
            continue
        tags = {
            **request.tags,
            "dagster/partition": request.partition_key,
            "dagster/run_key": request.run_key,
        }
        runs.append(
            instance.add_run(
                dg.DagsterRun(job_name=lifecycle.JOB_NAME, tags=tags, status=dg.DagsterRunStatus.NOT_STARTED)
            )
        )
    return runs


def priorities(result: dg.SensorResult) -> list[tuple[str, str | None]]:
    return [(r.tags["quantcraft/contestant"], r.tags.get("dagster/priority")) for r in result.run_requests]


def stages(instance) -> dict[str, tuple[str, str]]:
    """What the contestant sees (leaderboard, ``quantcraft status``): the lifecycle read model."""
    return {p: (s.stage, s.reason) for p, s in lifecycle.states(instance).items()}


def set_limits(monkeypatch, per_window: int, max_pending: int) -> None:
    """The organiser's settings, as the sensor reads them at every tick."""
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", str(per_window))
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", str(max_pending))


def upload_many(client, contestant: str, n: int) -> None:
    for i in range(n):
        client.put_bytes(f"submissions/{contestant}/e{i}", f"{contestant}{i}".encode())


@pytest.fixture
def no_limits(monkeypatch):
    set_limits(monkeypatch, 0, 0)


def test_priority_counts_the_contestants_pending_judgings(resource, no_limits):  # noqa: F811
    client = resource.client()
    with dg.instance_for_test() as instance:
        upload_many(client, "alice", 3)
        first = tick(instance, resource)
        runs = enqueue(instance, first)
        assert priorities(first) == [("alice", "0"), ("alice", "-1"), ("alice", "-2")]

        client.put_bytes("submissions/bob/e", b"b")
        client.put_bytes("submissions/alice/e3", b"a3")
        second = tick(instance, resource, first.cursor)
        enqueue(instance, second)
        assert sorted(priorities(second)) == [("alice", "-3"), ("bob", "0")]

        instance.report_run_failed(runs[0])  # one of alice's judgings is over: it no longer counts
        client.put_bytes("submissions/alice/e4", b"a4")
        third = tick(instance, resource, second.cursor)
        assert priorities(third) == [("alice", "-3")]


def test_fair_queue_off_leaves_the_queue_first_come_first_served(resource, no_limits, monkeypatch):  # noqa: F811
    monkeypatch.setenv("QUANTCRAFT_FAIR_QUEUE", "0")
    client = resource.client()
    client.put_bytes("submissions/alice/e0", b"a0")
    client.put_bytes("submissions/alice/e1", b"a1")
    with dg.instance_for_test() as instance:
        assert priorities(tick(instance, resource)) == [("alice", None), ("alice", None)]


def test_over_limit_uploads_are_skipped_with_a_reason_then_judged_when_lifted(resource, monkeypatch):  # noqa: F811
    set_limits(monkeypatch, 2, 0)
    client = resource.client()
    upload_many(client, "alice", 4)
    client.put_bytes("submissions/bob/e", b"b")
    with dg.instance_for_test() as instance:
        first = tick(instance, resource)
        enqueue(instance, first)
        assert sorted(r.tags["quantcraft/object_key"] for r in first.run_requests) == [
            "submissions/alice/e0",
            "submissions/alice/e1",
            "submissions/bob/e",
        ]
        shown = stages(instance)
        skipped = {p: reason for p, (stage, reason) in shown.items() if stage == lifecycle.SKIPPED}
        assert len(shown) == 5 and len(skipped) == 2  # recorded as submissions, not dropped
        assert all(p.startswith("alice-") for p in skipped)
        assert all("2 uploads per 10 minutes" in r and "organisers lift" in r for r in skipped.values())
        assert set(skipped) <= set(instance.get_dynamic_partitions("submissions"))

        same = tick(instance, resource, first.cursor)  # limits unchanged: held, and nothing repeated
        assert same.run_requests == [] and same.asset_events == []

        client.delete("submissions/alice/e3")  # withdrawn while held: nothing to judge
        monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "0")  # the organiser lifts the limit
        lifted = tick(instance, resource, same.cursor)
        enqueue(instance, lifted)
        assert [r.tags["quantcraft/object_key"] for r in lifted.run_requests] == ["submissions/alice/e2"]
        assert {r.partition_key for r in lifted.run_requests} < set(skipped)
        assert stages(instance)[lifted.run_requests[0].partition_key][0] == lifecycle.QUEUED
        assert tick(instance, resource, lifted.cursor).run_requests == []


def test_pending_cap_holds_a_burst_in_one_listing(resource, monkeypatch):  # noqa: F811
    set_limits(monkeypatch, 0, 3)
    upload_many(resource.client(), "alice", 5)
    with dg.instance_for_test() as instance:
        result = tick(instance, resource)
        enqueue(instance, result)
        assert len(result.run_requests) == 3
        reasons = [reason for stage, reason in stages(instance).values() if stage == lifecycle.SKIPPED]
        assert len(reasons) == 2 and all("still waiting" in r for r in reasons)


def test_a_relisting_after_a_lost_cursor_leaves_judged_uploads_alone(resource, monkeypatch):  # noqa: F811
    """Judged uploads are never counted against themselves, nor shown queued again."""
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "2")
    client = resource.client()
    client.put_bytes("submissions/alice/e0", b"a0")
    client.put_bytes("submissions/alice/e1", b"a1")
    with dg.instance_for_test() as instance:
        first = tick(instance, resource)
        for run in enqueue(instance, first):
            instance.report_run_failed(run)  # over, whatever the verdict
        again = tick(instance, resource, None)
        assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
        assert again.asset_events == []  # neither "queued" nor "skipped"
