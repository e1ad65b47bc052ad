"""The finals job on real example engines: one shared official trace set, round-robin judgings,
the final table."""

from __future__ import annotations

import time

import dagster as dg
import orjson
import pytest

from assets.finals import final_standings, finals_judgings
from assets.standings import standings
from assets.traces import finals_expected_reports, finals_trace
from quantcraft_dagster import lifecycle
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.finals import median_ci
from quantcraft_dagster.core.keys import FINAL_STANDINGS
from resources import BucketResource, ContestResource, JudgingResource, SandboxResource, ScoringResource
from resources.io_manager import BucketJSONIOManager, TraceIOManager

# Qualifying: alice the correct engine, bob and carol the wrong variants with overlapping ranges
# (tied), so the top 2 brings in all three.
QUALIFYING = [
    ("alice", "engine", 90.0, (89.5, 90.5), True),
    ("carol", "lifo_priority", 89.0, (88.0, 89.6), False),
    ("bob", "never_cancel", 88.8, (88.5, 89.2), False),
]


def resources(tmp_path) -> dict:
    bucket = BucketResource(backend="local", root=str(tmp_path / "bucket"))
    return {
        "bucket": bucket,
        "io_manager": BucketJSONIOManager(bucket=bucket),
        "trace_io_manager": TraceIOManager(bucket=bucket),
        "contest": ContestResource(official_secret="finals-test-secret"),
        "sandbox": SandboxResource(),
        "judging": JudgingResource(profile="quick"),
        "scoring": ScoringResource(),
    }


@pytest.mark.slow
def test_finals_rejudge_the_top_and_their_ties_round_robin_correct_engine_first(engines, tmp_path):
    res = resources(tmp_path)
    bucket = res["bucket"].client()
    with dg.DagsterInstance.ephemeral() as instance:
        for contestant, variant, final, final_range, correct in QUALIFYING:
            partition = f"{contestant}-1"
            bucket.put_file(keys.binary(partition), engines / variant)
            metadata = {
                "partition": partition, "contestant": contestant, "status": "finished", "reason": "ok",
                "final": final, "final_range": list(final_range), "fully_correct": correct,
                "uploaded_at": time.time(),
            }  # fmt: skip
            instance.report_runless_asset_event(
                dg.AssetMaterialization(lifecycle.SCORE_ASSET, partition=partition, metadata=metadata)
            )
        result = dg.materialize(
            [standings, finals_trace, finals_expected_reports, finals_judgings, final_standings],
            instance=instance,
            resources=res,
            run_config={"ops": {"finals_judgings": {"config": {"top": 2, "repeat": 2}}}},
        )
    assert result.success
    value = result.output_for_node("final_standings")
    # Every finalist judged on the finals' one trace set: one trace id across all judgings.
    shared = result.asset_materializations_for_node("finals_trace")[0].metadata["trace_id"].value
    assert {r["trace_id"] for r in value["runs"]} == {shared}
    assert value == orjson.loads(bucket.get_bytes(FINAL_STANDINGS))
    # Everyone once per round, in qualifying order: alice carol bob alice carol bob.
    assert [(r["round"], r["contestant"]) for r in value["runs"]] == [
        (r, who) for r in range(2) for who in ("alice", "carol", "bob")
    ]
    assert all(r["status"] == "finished" for r in value["runs"]), value["runs"]
    table = value["standings"]
    assert table[0]["contestant"] == "alice", table
    assert table[0]["rank"] == 1 and not table[0]["tied"] and table[0]["fully_correct"]
    assert {r["contestant"]: r["fully_correct"] for r in table} == {
        "alice": True,
        "carol": False,
        "bob": False,
    }
    assert all(r["rank"] > 1 for r in table[1:])
    for row in table:
        assert len(row["finals"]) == 2
        assert row["ci"][0] <= row["median"] <= row["ci"][1]
        assert row["ci"] == pytest.approx(median_ci(row["finals"]), abs=2e-3)  # seeded: reproducible


def test_finals_the_judge_cannot_vouch_for_stop_tagged_with_their_slot(engines, tmp_path, monkeypatch):
    """Never a table on fewer judgings: after the judge's own retries the run fails, tagged with the
    slot it waited on, for the requeue sensor (tests/sensors/test_requeue.py) to run it again."""
    from assets import finals as finals_assets
    from quantcraft_dagster.judge.errors import InfrastructureError

    def noisy_host(*args, **kwargs):
        raise InfrastructureError("no valid trial of phase C after re-runs: judge sent late")

    monkeypatch.setattr(finals_assets, "judge_binary", noisy_host)
    monkeypatch.setattr(finals_assets, "infrastructure_retry_wait_s", lambda attempt: 0.0)
    res = resources(tmp_path)
    bucket = res["bucket"].client()
    with dg.DagsterInstance.ephemeral() as instance:
        contestant, variant, final, final_range, correct = QUALIFYING[0]
        bucket.put_file(keys.binary(f"{contestant}-1"), engines / variant)
        metadata = {
            "partition": f"{contestant}-1", "contestant": contestant, "status": "finished", "reason": "ok",
            "final": final, "final_range": list(final_range), "fully_correct": correct,
            "uploaded_at": time.time(),
        }  # fmt: skip
        instance.report_runless_asset_event(
            dg.AssetMaterialization(lifecycle.SCORE_ASSET, partition=f"{contestant}-1", metadata=metadata)
        )
        result = dg.materialize(
            [standings, finals_trace, finals_expected_reports, finals_judgings, final_standings],
            instance=instance,
            resources=res,
            run_config={"ops": {"finals_judgings": {"config": {"top": 1, "repeat": 1}}}},
            raise_on_error=False,
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[lifecycle.FINALS_WAITING_TAG] == res["sandbox"].slot_keys()[0]
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert lifecycle.WAITING_REASON in failure.step_failure_data.error.message
    assert bucket.head(FINAL_STANDINGS) is None
