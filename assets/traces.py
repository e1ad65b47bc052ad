"""Official traces and their reference answers: one set per judging, and one shared by the finals.

Every official judging replays its own trace, derived from the organisers' secret and the
submission's id (``core.trace.official``): ``official_trace`` → ``expected_reports`` → the
judging, all three in the submission's partition, so orders and answers a contestant gathers from
one judging's divergences are worth nothing in the next, and the lineage shows what each verdict
was checked against. The finals judge every finalist on one shared set (``finals_trace`` →
``finals_expected_reports``, unpartitioned), so finalists are compared on the same orders.

Values are ``{phase: lines}`` stored under ``official/`` by the trace IO manager (organisers
only: the leaderboard never serves that prefix). Metadata names the shape and the trace id,
never the seed.
"""

from collections import Counter
from typing import Any

import dagster as dg
import orjson

from assets.partitions import submissions
from quantcraft_dagster.core import trace
from quantcraft_dagster.core.bundle import PhaseBundle, answer_lines, trace_id, trace_lines, version
from quantcraft_dagster.judge.bundles import official_bundle
from resources import ContestResource, JudgingResource

Lines = dict[str, list[bytes]]

TRACE_LINES = dg.DagsterType(
    name="TraceLines",
    description="Lines per phase, {phase: [line]}, as sent or answered on the wire.",
    # By shape only: Dagster's check of dict[str, list[bytes]] visits every line of every phase,
    # on every output and input of every judging (docs/official-traces.md).
    type_check_fn=lambda _, value: (
        isinstance(value, dict)
        and set(value) <= set(trace.PHASES)
        and all(isinstance(lines, list) for lines in value.values())
    ),
)
TRACE_INPUT = dg.AssetIn(dagster_type=TRACE_LINES)


def _versioned(lines: Lines, metadata: dict[str, Any]) -> dg.Output[Lines]:
    """The value with its trace id as data version: a new trace is a new version."""
    ident = trace_id({p: version(phase_lines)[:16] for p, phase_lines in lines.items()})
    return dg.Output(lines, data_version=dg.DataVersion(ident), metadata={"trace_id": ident, **metadata})


def _traces(contest: ContestResource, profile: str, submission: str | None) -> dg.Output[Lines]:
    """Every phase's orders exactly as sent on the wire; metadata: the shape, never the seed."""
    specs = {p: contest.spec(profile, p, submission) for p in trace.PHASES}
    lines = {p: trace_lines(spec) for p, spec in specs.items()}
    types = {p: dict(Counter(orjson.loads(line)["type"] for line in v)) for p, v in lines.items()}
    return _versioned(
        lines,
        {
            "profile": profile,
            "orders": {p: len(v) for p, v in lines.items()},
            "connections": {p: s.connections for p, s in specs.items()},
            "types": types,
        },
    )


def _answers(traces: Lines) -> dg.Output[Lines]:
    """The reference engine's report for every order of each stored phase, then the final books."""
    lines = {p: answer_lines(orders) for p, orders in traces.items()}
    statuses = {
        p: dict(Counter(orjson.loads(line)["status"] for line in v[: len(traces[p])]))
        for p, v in lines.items()
    }
    return _versioned(lines, {"statuses": statuses})


@dg.asset(
    partitions_def=submissions,
    group_name="judging",
    io_manager_key="trace_io_manager",
    kinds={"jsonl"},
    dagster_type=TRACE_LINES,
)
def official_trace(
    context: dg.AssetExecutionContext, judging: JudgingResource, contest: ContestResource
) -> dg.Output[Lines]:
    """This judging's own official orders (organisers only), from the secret and the partition."""
    return _traces(contest, judging.profile, context.partition_key)


@dg.asset(
    partitions_def=submissions,
    group_name="judging",
    io_manager_key="trace_io_manager",
    kinds={"jsonl"},
    dagster_type=TRACE_LINES,
    ins={"official_trace": TRACE_INPUT},
)
def expected_reports(official_trace: Lines) -> dg.Output[Lines]:
    """The reference answers to this judging's trace (organisers only; divergences show a few)."""
    return _answers(official_trace)


@dg.asset(group_name="finals", io_manager_key="trace_io_manager", kinds={"jsonl"}, dagster_type=TRACE_LINES)
def finals_trace(judging: JudgingResource, contest: ContestResource) -> dg.Output[Lines]:
    """The finals' one official trace set, the same for every finalist (organisers only)."""
    return _traces(contest, judging.profile, None)


@dg.asset(
    group_name="finals",
    io_manager_key="trace_io_manager",
    kinds={"jsonl"},
    dagster_type=TRACE_LINES,
    ins={"finals_trace": TRACE_INPUT},
)
def finals_expected_reports(finals_trace: Lines) -> dg.Output[Lines]:
    """The reference answers to the finals' trace set."""
    return _answers(finals_trace)


def official_bundles(
    contest: ContestResource, profile: str, submission: str | None, traces: Lines, answers: Lines
) -> dict[str, PhaseBundle]:
    """The judge's traces and answers from two assets' values; stored traces of another profile's
    size fail the run: re-materialising them is the organiser's decision."""
    try:
        return {
            p: official_bundle(contest.spec(profile, p, submission), lines, answers[p])
            for p, lines in traces.items()
        }
    except ValueError as exc:
        raise dg.Failure(f"official traces unusable: {exc}") from exc
