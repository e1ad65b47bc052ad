"""The contest's official traces and their reference answers, one static partition per phase.

Official traces have the contest profile's shape and organiser-held seeds (``ContestResource``):
nothing here is public. The judging asset reads both assets' values, so re-materialising them
changes what the next judging replays and checks.
"""

from collections import Counter

import dagster as dg
import orjson

from quantcraft_dagster.core import trace
from quantcraft_dagster.core.bundle import answer_lines, trace_lines, version
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
