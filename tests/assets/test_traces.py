"""The official trace assets: one trace per judging in its submission's partition, reproducible
from the id, one shared set for the finals, and a lineage that is the real data flow."""

from __future__ import annotations

import dagster as dg
import orjson
import pytest

from assets.traces import expected_reports, finals_expected_reports, finals_trace, official_trace
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.bundle import official_bundles, version
from quantcraft_dagster.definitions import defs
from resources import BucketResource, ContestResource, JudgingResource
from resources.io_manager import TraceIOManager

SECRET = "organisers-only"
PARTITIONS = ("alice-20250101T000000-aa", "alice-20250101T001000-bb")


@pytest.fixture
def resources(tmp_path) -> dict:
    bucket = BucketResource(backend="local", root=str(tmp_path / "bucket"))
    return {
        "bucket": bucket,
        "trace_io_manager": TraceIOManager(bucket=bucket),
        "contest": ContestResource(official_secret=SECRET),
        "judging": JudgingResource(profile="quick"),
    }


def _materialize(instance, resources, assets, partition=None) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, partition_key=partition, resources=resources, instance=instance)
    assert result.success
    return result


def test_each_judging_gets_its_own_trace_reproducible_from_its_id(resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("submissions", list(PARTITIONS))
        runs = {
            p: _materialize(instance, resources, [official_trace, expected_reports], p) for p in PARTITIONS
        }
        again = _materialize(instance, resources, [official_trace, expected_reports], PARTITIONS[0])
    traces = {p: r.output_for_node("official_trace") for p, r in runs.items()}
    answers = {p: r.output_for_node("expected_reports") for p, r in runs.items()}
    first, second = PARTITIONS
    assert all(traces[first][phase] != traces[second][phase] for phase in "ABC")
    assert again.output_for_node("official_trace") == traces[first]  # same id, same trace
    # The organiser's reproduction (quantcraft trace/judge --submission) is what the judging replayed.
    for partition in PARTITIONS:
        reproduced = official_bundles("quick", SECRET, partition)
        assert {p: b.payloads for p, b in reproduced.items()} == traces[partition]
        assert {p: b.version for p, b in reproduced.items()} == {
            p: version(lines)[:16] for p, lines in traces[partition].items()
        }
        assert [r.status for r in reproduced["B"].expected] == [
            orjson.loads(line)["status"] for line in answers[partition]["B"][: len(traces[partition]["B"])]
        ]
    ids = {
        p: r.asset_materializations_for_node("official_trace")[0].metadata["trace_id"].value
        for p, r in runs.items()
    }
    assert ids[first] != ids[second]
    client = resources["bucket"].client()
    assert client.head(keys.official(["official_trace"], first, "A")) is not None


def test_metadata_names_the_shape_and_trace_never_the_seed(resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("submissions", [PARTITIONS[0]])
        result = _materialize(instance, resources, [official_trace, expected_reports], PARTITIONS[0])
    spec_seeds = {
        str(ContestResource(official_secret=SECRET).spec("quick", p, PARTITIONS[0]).seed) for p in "ABC"
    }
    for node in ("official_trace", "expected_reports"):
        (materialization,) = result.asset_materializations_for_node(node)
        shown = str({k: v.value for k, v in materialization.metadata.items()}) + str(materialization.tags)
        assert not any(seed in shown for seed in spec_seeds) and SECRET not in shown
    logs = "".join(str(e.message) for e in result.all_events)
    assert not any(seed in logs for seed in spec_seeds) and SECRET not in logs


def test_the_finals_share_one_set_apart_from_every_judging(resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("submissions", [PARTITIONS[0]])
        finals = _materialize(instance, resources, [finals_trace, finals_expected_reports])
        again = _materialize(instance, resources, [finals_trace, finals_expected_reports])
        judging = _materialize(instance, resources, [official_trace], PARTITIONS[0])
    assert finals.output_for_node("finals_trace") == again.output_for_node("finals_trace")
    assert finals.output_for_node("finals_trace")["A"] != judging.output_for_node("official_trace")["A"]
    assert len(finals.output_for_node("finals_expected_reports")["A"]) > len(
        finals.output_for_node("finals_trace")["A"]
    )


def test_the_lineage_is_the_data_flow_binary_and_trace_to_answers_to_judging():
    graph = defs().resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["official_trace"] == set()  # from the secret and the partition key alone
    assert parents["expected_reports"] == {"official_trace"}
    assert {"submission_binary", "official_trace", "expected_reports"} <= parents["verdict"]
    assert parents["finals_expected_reports"] == {"finals_trace"}
    assert {"finals_trace", "finals_expected_reports", "standings"} <= parents["finals_judgings"]
    assert not parents["finals_judgings"] & {"official_trace", "expected_reports"}
    assert parents["final_standings"] == {"finals_judgings"}  # scored again without judging again
