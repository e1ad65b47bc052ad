"""The contest's official traces and their reference answers, one static partition per phase.

Official traces have the contest profile's shape and organiser-held seeds (``ContestResource``):
nothing here is public. The judging asset reads both assets' values, so re-materialising them
changes what the next judging replays and checks.
"""

from collections import Counter

import dagster as dg
import orjson

from quantcraft_dagster.core import trace
from quantcraft_dagster.core.bundle import PhaseBundle, answer_lines, trace_lines, version
from quantcraft_dagster.judge.judging import official_bundle
from resources import ContestResource, JudgingResource

TRACE_PARTITIONS = dg.StaticPartitionsDefinition(list(trace.PHASES))


@dg.asset(
    partitions_def=TRACE_PARTITIONS, group_name="traces", io_manager_key="trace_io_manager", kinds={"jsonl"}
)
def order_trace(
    context: dg.AssetExecutionContext, judging: JudgingResource, contest: ContestResource
) -> dg.Output[list[bytes]]:
    """The phase's official orders exactly as sent on the wire, one JSON object per line."""
    spec = contest.spec(judging.profile, context.partition_key)
    lines = trace_lines(spec)
    types = Counter(orjson.loads(line)["type"] for line in lines)
    return dg.Output(
        lines,
        data_version=dg.DataVersion(version(lines)[:16]),
        metadata={
            "profile": judging.profile,
            "orders": len(lines),
            "symbols": len(spec.symbols),
            "connections": spec.connections,
            "types": dict(types),
        },
    )


@dg.asset(
    partitions_def=TRACE_PARTITIONS, group_name="traces", io_manager_key="trace_io_manager", kinds={"jsonl"}
)
def expected_reports(context: dg.AssetExecutionContext, order_trace: list[bytes]) -> dg.Output[list[bytes]]:
    """The reference engine's report for every order of the stored trace, then the final books."""
    lines = answer_lines(order_trace)
    statuses = Counter(orjson.loads(line)["status"] for line in lines[: len(order_trace)])
    return dg.Output(
        lines,
        data_version=dg.DataVersion(version(lines)[:16]),
        metadata={
            "reports": len(order_trace),
            "books": len(lines) - len(order_trace),
            "statuses": dict(statuses),
        },
    )


# What an official judging reads: every phase of both assets (a dict of phase → lines each).
OFFICIAL_TRACES = {
    "order_trace": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
    "expected_reports": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
}


def official_bundles(
    contest: ContestResource,
    profile: str,
    order_trace: dict[str, list[bytes]],
    expected_reports: dict[str, list[bytes]],
) -> dict[str, PhaseBundle]:
    """The judge's traces and answers from the two assets' values; stored traces of another
    profile's size fail the run: re-materialising them is the organiser's decision."""
    try:
        return {
            p: official_bundle(contest.spec(profile, p), lines, expected_reports[p])
            for p, lines in order_trace.items()
        }
    except ValueError as exc:
        raise dg.Failure(f"official traces unusable: {exc}") from exc
