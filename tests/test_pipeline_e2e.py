"""End to end through the real Dagster daemon and webserver on SQLite (the embedded default)."""

from __future__ import annotations

import os
import signal
import time

import dagster as dg
import httpx2 as httpx
import pytest
from dagster._core.scheduler.instigation import TickStatus  # not exported: ticks are the daemon's

from quantcraft_dagster import lifecycle, services, settings
from quantcraft_dagster.cli_stack import submit

from .judge.helpers import assert_nothing_left
from .servers import free_port, sensor_ticks, wait_for


@pytest.fixture
def platform(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("QUANTCRAFT_PROFILE", "quick")
    svc = services.Services(port=free_port(), leaderboard_port=free_port())
    svc.start()
    svc.wait_ready()
    yield svc
    svc.stop()


def upload_through_page(base: str, token: str, binary) -> None:
    """A contestant's upload with the leaderboard's own page, in Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    from .leaderboard.test_browser import ARGS, CHROMIUM

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(f"{base}/upload")
        page.fill("input[name=token]", token)
        page.set_input_files("input[name=file]", str(binary))
        page.click("button[type=submit]")
        page.wait_for_selector("#result:has-text('uploaded')", timeout=10_000)
        browser.close()


def read_states() -> dict[str, lifecycle.SubmissionState]:
    with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
        return lifecycle.states(instance)


def count_events(asset: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
        result = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000)
        for record in result.records:
            counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
    return counts


@pytest.mark.timeout(600)
def test_uploads_are_judged_through_the_daemon_and_survive_a_daemon_crash(platform, engines, tmp_path):
    from quantcraft_dagster.storage.bucket import from_settings

    text = tmp_path / "engine.txt"
    text.write_text("not an engine")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    from leaderboard_app import contestants

    bucket = from_settings(settings.current())
    token = contestants.add(bucket, "alice")
    upload_through_page(platform.leaderboard_url, token, engines / "engine")  # the others use the CLI
    submit("bob", engines / "never_cancel")
    # bad uploads that bypass the CLI's own checks
    bucket.put_file("submissions/eve/engine.txt", text)
    bucket.put_file("submissions/zed/empty", empty)
    bucket.put_bytes("submissions/not a contestant/x", b"junk")

    def judging_started():
        return any(s.stage.startswith("running") for s in read_states().values())

    wait_for(judging_started, 120, "a judging to start")
    os.kill(platform.procs["daemon"].pid, signal.SIGKILL)  # the daemon crashes mid-way
    platform.procs.pop("daemon").wait()
    time.sleep(2)
    platform.start()  # only the daemon is down, so only the daemon starts

    seen: dict[str, lifecycle.SubmissionState] = {}

    def all_terminal():
        seen.update(read_states())
        done = [s for s in seen.values() if s.stage in lifecycle.TERMINAL and s.score]
        return seen if len(seen) == 4 and len(done) == 4 else None

    try:
        states = wait_for(all_terminal, 360, "four terminal submissions")
    except AssertionError as timeout:  # say where each submission stopped, not only that one did
        raise AssertionError({p: (s.stage, s.reason, s.detail) for p, s in seen.items()}) from timeout
    by_contestant = {s.score["contestant"]: s for s in states.values()}
    assert by_contestant["alice"].stage == "finished" and by_contestant["alice"].score["correctness"] == 100.0
    assert by_contestant["bob"].stage == "finished" and by_contestant["bob"].score["correctness"] < 100.0
    assert by_contestant["eve"].stage == "rejected" and "ELF" in by_contestant["eve"].score["reason"]
    assert by_contestant["zed"].stage == "rejected" and "empty" in by_contestant["zed"].score["reason"]
    for asset in ("score", "verdict"):
        assert set(count_events(asset).values()) == {1}, f"{asset} judged twice"
    with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
        skipped = instance.fetch_observations(dg.AssetKey("rejected_uploads"), limit=10).records
        assert any("not a contestant" in r.asset_observation.metadata["key"].value for r in skipped)
        runs = instance.get_runs(dg.RunsFilter(job_name=lifecycle.JOB_NAME))
        assert len({r.tags["dagster/partition"] for r in runs}) == len(runs) == 4
    assert_nothing_left()
    board = httpx.get(f"{platform.leaderboard_url}/api/leaderboard").json()["leaderboard"]
    assert [r["contestant"] for r in board] == ["alice", "bob"]  # eve and zed were rejected

    # Stop everything and start again: nothing lost, nothing judged again.
    platform.stop()
    restarted_at = time.time()
    platform.start()
    platform.wait_ready()

    def three_ticks() -> bool:  # the sensor listed the bucket again, three times
        with dg.DagsterInstance.from_config(str(services.dagster_home())) as instance:
            listed = (TickStatus.SUCCESS, TickStatus.SKIPPED)
            return len([t for t in sensor_ticks(instance, restarted_at) if t.status in listed]) >= 3

    wait_for(three_ticks, 120, "three sensor ticks after the restart")
    again = read_states()
    assert {p: s.stage for p, s in again.items()} == {p: s.stage for p, s in states.items()}
    assert set(count_events("score").values()) == {1}
