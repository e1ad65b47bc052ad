"""Changing the scoring preset re-ranks stored judgings, the standings and the finals, judging
nothing: on a real (ephemeral) instance, the assets materialized and the sensor invoked directly."""

from __future__ import annotations

import time

import dagster as dg
import orjson
import pytest

from assets.finals import final_standings, finals_judgings
from assets.standings import standings
from quantcraft_dagster import lifecycle
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.finals import run_record
from quantcraft_dagster.core.scoring import TrialSet
from quantcraft_dagster.definitions import final_table_job, standings_job
from resources import BucketResource, ScoringResource
from resources.io_manager import BucketJSONIOManager
from sensors.rescore import build_rescore_sensor

# alice: a slow p99 but a high rate; bob: a quick p99, a lower rate. The seed's curves give both
# ≈ 100 latency and rank alice first on throughput; the contest scale sees bob's p99.
FIGURES = {
    "alice": TrialSet((900.0,) * 3, 300_000.0, 100, 100),  # p50, p90, p99 alike
    "bob": TrialSet((40.0,) * 3, 60_000.0, 100, 100),
}
JUDGE_JOB = lifecycle.JOB_NAME


@pytest.fixture
def bucket(tmp_path) -> BucketResource:
    return BucketResource(backend="local", root=str(tmp_path / "bucket"))


@pytest.fixture
def instance(bucket):
    """Two stored judgings (score records as the ``score`` asset writes them, scored on the seed)
    and the finals' judgings of both, as ``finals_judgings`` stores them."""
    with dg.DagsterInstance.ephemeral() as inst:
        for contestant, figures in FIGURES.items():
            record = {
                "partition": f"{contestant}-1", "contestant": contestant, "status": "finished",
                "reason": "ok", "fully_correct": True, "uploaded_at": time.time(), "scoring": "seed",
                "trial_sets": [figures.to_obj()],
            }  # fmt: skip
            inst.report_runless_asset_event(
                dg.AssetMaterialization(lifecycle.SCORE_ASSET, partition=f"{contestant}-1", metadata=record)
            )
        rows = [{"rank": i + 1, "contestant": c, "partition": f"{c}-1"} for i, c in enumerate(FIGURES)]
        verdicts = {
            c: {"status": "finished", "reason": "ok", "scores": None, "scoring": "seed",
                "trial_sets": [f.to_obj()], "phases": {"A": {"orders": 100, "exact": 100}}}
            for c, f in FIGURES.items()
        }  # fmt: skip
        runs = [run_record(r, row, verdicts[row["contestant"]]) for r in range(3) for row in rows]
        value = {"at": "2026-12-06T00:00:00+00:00", "profile": "quick", "top": 2, "repeat": 3,
                 "finalists": rows, "runs": runs}  # fmt: skip
        bucket.client().put_bytes(keys.asset_value(("finals_judgings",), None), orjson.dumps(value))
        yield inst


def rank_all(instance, bucket) -> tuple[list[str], list[str]]:
    """Materialize the standings and the final table on the configured preset: their orders."""
    resources = {"bucket": bucket, "io_manager": BucketJSONIOManager(bucket=bucket)}
    resources["scoring"] = ScoringResource()  # the preset from the setting, as deployed
    for assets in ([standings], [finals_judgings.to_source_asset(), final_standings]):
        assert dg.materialize(assets, instance=instance, resources=resources).success
    table = orjson.loads(bucket.client().get_bytes(keys.STANDINGS))
    finals = orjson.loads(bucket.client().get_bytes(keys.FINAL_STANDINGS))
    return [r["contestant"] for r in table], [r["contestant"] for r in finals["standings"]]


def requested(instance) -> list[str]:
    sensor = build_rescore_sensor(standings_job, final_table_job)
    return sorted(r.job_name for r in sensor(dg.build_sensor_context(instance=instance)))


def test_switching_the_preset_rescores_everything_with_no_judging_run(instance, bucket, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_SCORING", "seed")
    assert rank_all(instance, bucket) == (["alice", "bob"], ["alice", "bob"])
    assert requested(instance) == []  # written on the current preset: nothing to do
    seed_finals = {s.contestant: s.score["final"] for s in lifecycle.states(instance).values()}

    monkeypatch.setenv("QUANTCRAFT_SCORING", "contest")
    # The stored judgings read on the new preset at once (the leaderboard's and status's reading).
    states = lifecycle.states(instance)
    contest_finals = {s.contestant: s.score["final"] for s in states.values()}
    assert {s.score["scoring"] for s in states.values()} == {"contest"}
    assert contest_finals["bob"] > contest_finals["alice"] and seed_finals["alice"] > seed_finals["bob"]
    # What is written down is stale: the sensor asks for both to be ranked again.
    assert requested(instance) == [final_table_job.name, standings_job.name]
    assert rank_all(instance, bucket) == (["bob", "alice"], ["bob", "alice"])
    assert requested(instance) == []
    finals = orjson.loads(bucket.client().get_bytes(keys.FINAL_STANDINGS))
    assert finals["scoring"] == "contest" and {r["scoring"] for r in finals["runs"]} == {"contest"}
    assert not instance.get_runs(dg.RunsFilter(job_name=JUDGE_JOB))  # nothing was judged again
