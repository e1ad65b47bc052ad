"""The code location loads as Dagster's own tools load it, and judging retries only the judge."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson
import pytest

import assets.submission as submission_assets
from assets.calibration import calibrate_host, calibration
from assets.traces import expected_reports, official_trace
from quantcraft_dagster.judge.errors import InfrastructureError, infrastructure_retry_wait_s
from resources import (
    BucketResource,
    ContestResource,
    DuckDBResource,
    JudgingResource,
    SandboxResource,
    ScoringResource,
)
from resources.io_manager import BucketJSONIOManager, ParquetIOManager, TraceIOManager

ROOT = Path(__file__).resolve().parent.parent


def test_workspace_loads_with_dagster_cli(tmp_path):
    env = {"DAGSTER_HOME": str(tmp_path), "QUANTCRAFT_HOME": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_setting_is_read_at_import_only_when_the_location_loads():
    """A broken setting breaks loading the code location, with its name, never importing a module:
    the environment is read when Dagster loads the location (``@dg.definitions``)."""
    code = (
        "import quantcraft_dagster.definitions as d, leaderboard_app.app, quantcraft_dagster.cli\n"
        "print('imported')\n"
        "d.defs()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "QUANTCRAFT_SCORING": "bogus"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.stdout == "imported\n", proc.stderr
    assert proc.returncode != 0 and "unknown scoring preset 'bogus'" in proc.stderr


@pytest.fixture
def resources(tmp_path):
    bucket = BucketResource(backend="local", root=str(tmp_path / "bucket"))
    return {
        "bucket": bucket,
        "io_manager": BucketJSONIOManager(bucket=bucket),
        "trace_io_manager": TraceIOManager(bucket=bucket),
        "parquet_io_manager": ParquetIOManager(bucket=bucket),
        "contest": ContestResource(official_secret="organisers-only"),
        "sandbox": SandboxResource(),
        "judging": JudgingResource(
            profile="quick",
            report_timeout_s=2.0,
            health_timeout_s=3.0,
        ),
        "duckdb": DuckDBResource(),
        "scoring": ScoringResource(),
    }


JUDGING = [submission_assets.submission_binary, official_trace, expected_reports, submission_assets.judging]


def _judge_partition(resources, binary: Path, partition: str = "p1", selection=JUDGING, instance=None):
    client = resources["bucket"].client()
    info = client.put_file(f"submissions/t/{binary.name}", binary)
    etag = client.head(info.key).etag
    manifest = {
        "key": info.key, "etag": etag, "contestant": "t", "filename": binary.name,
        "modified": 1.0, "size": info.size, "partition": partition,
    }  # fmt: skip
    client.put_bytes(f"intake/{partition}.json", orjson.dumps(manifest))
    with contextlib.ExitStack() as stack:
        if instance is None:
            instance = stack.enter_context(dg.instance_for_test())
            calibrate_host(instance, resources)
        instance.add_dynamic_partitions("submissions", [partition])
        result = dg.materialize(
            [calibration, *selection],
            selection=selection,
            partition_key=partition,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        return result, retries


def test_infrastructure_failures_are_retried(resources, engines, monkeypatch):
    """Twice, after the policy's waits: the waits are asked of the policy and taken as asked, but
    zero here (25 s of sleep would show nothing the asked values do not)."""
    calls, waits = [], []

    def broken_judge(*args, **kwargs):
        calls.append(1)
        raise InfrastructureError("load generator failed (simulated)")

    def policy(retry_number: int) -> int:
        waits.append(infrastructure_retry_wait_s(retry_number))
        return 0

    monkeypatch.setattr(submission_assets, "judge_binary", broken_judge)
    monkeypatch.setattr(submission_assets, "infrastructure_retry_wait_s", policy)
    result, retries = _judge_partition(resources, engines / "engine")
    assert not result.success
    assert len(calls) == 3 and len(retries) == 2  # first try + 2 retries, then the run fails
    assert waits == [5, 20]


def test_an_engine_crash_is_a_verdict_not_a_retry(resources, engines):
    result, retries = _judge_partition(resources, engines / "crash_mid_phase")
    assert result.success and retries == []
    verdict = result.output_for_node("judging", "verdict")
    assert verdict["status"] == "failed" and "SIGABRT" in verdict["reason"]


def test_the_score_asset_records_the_judges_scores_on_the_organisers_preset(resources, engines):
    scoring = ScoringResource(preset="seed")  # not the default: the resource's choice reaches both
    every = [
        *JUDGING,
        submission_assets.metrics,
        submission_assets.correctness,
        submission_assets.score,
    ]
    result, _ = _judge_partition(
        {**resources, "scoring": scoring}, engines / "lifo_priority", selection=every
    )
    assert result.success
    verdict, score = result.output_for_node("judging", "verdict"), result.output_for_node("score")
    s = verdict["scores"]
    assert verdict["scoring"] == score["scoring"] == "seed"
    assert s["final"] == pytest.approx(
        0.4 * s["latency"] + 0.3 * s["throughput"] + 0.3 * s["correctness"], abs=1e-2
    )
    assert {k: score[k] for k in s} == s
    assert score["trial_sets"] == verdict["trial_sets"] and len(score["trial_sets"]) >= 1
    assert score["final_range"] == verdict["scores_range"]["final"]
    assert score["fully_correct"] is False and score["correctness"] < 100
    assert "A-" not in score["reason"] and "divergence" not in score["reason"]  # public: no order ids
    assert verdict["traces"] == "official" and set(verdict["trace_versions"]) == {"A", "B", "C"}
    assert len(verdict["trace_id"]) == 12
    assert verdict["calibration"]["valid"] is True and verdict["calibration"]["at"]
    # the calibration of the slot it was judged on, named in the verdict's metadata too
    (slot,) = [
        e.metadata
        for e in result.asset_materializations_for_node("judging")
        if e.asset_key.path == ["verdict"]
    ]
    assert verdict["calibration"]["slot"] == slot["judge_slot"].value == resources["sandbox"].slot_keys()[0]


def test_two_judgings_of_one_binary_replay_different_official_traces(resources, engines):
    """Each judging reads its own partition's trace and answers: the same binary judged twice is
    checked against two traces, and each verdict names the trace its partition's asset holds."""
    with dg.instance_for_test() as instance:
        calibrate_host(instance, resources)
        verdicts = {}
        for partition in ("t-20250101T000000-aa", "t-20250101T001000-bb"):
            result, _ = _judge_partition(resources, engines / "engine", partition, instance=instance)
            assert result.success
            verdicts[partition] = result.output_for_node("judging", "verdict")
            (stored,) = result.asset_materializations_for_node("official_trace")
            trace_id = stored.metadata["trace_id"].value
            assert verdicts[partition]["trace_id"] == trace_id
    first, second = verdicts.values()
    assert first["trace_id"] != second["trace_id"]
    assert first["trace_versions"]["A"] != second["trace_versions"]["A"]
    assert first["scores"]["correctness"] == second["scores"]["correctness"] == 100.0
