"""Per-submission assets (dynamic partition ``submissions``): binary and this judging's official
trace → expected reports (``assets.traces``) → judging (verdict and telemetry) → metrics,
correctness → score. Every rule called here lives in
``quantcraft_dagster.core``; every value is stored by an IO manager (``resources.io_manager``)."""

import socket
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import orjson
import pyarrow as pa

from assets.partitions import submissions
from assets.traces import TRACE_INPUT, official_bundles
from quantcraft_dagster.core import keys, trace
from quantcraft_dagster.core.binary import Rejected, check_size, validate
from quantcraft_dagster.core.metrics import latency_curves, phase_metrics, with_judge_figures
from quantcraft_dagster.core.scoring import rescored
from quantcraft_dagster.core.telemetry import TELEMETRY_COLUMNS, TELEMETRY_SCHEMA
from quantcraft_dagster.core.trial import summarize
from quantcraft_dagster.core.verdict import fully_correct, rejected
from quantcraft_dagster.judge.errors import (
    INFRASTRUCTURE_RETRIES,
    InfrastructureError,
    infrastructure_retry_wait_s,
)
from quantcraft_dagster.judge.judging import judge_binary
from quantcraft_dagster.lifecycle import (
    JUDGING_POOL,
    LIFECYCLE_ASSET,
    SLOT_METADATA,
    WAITING,
    WAITING_REASON,
)
from resources import (
    BucketResource,
    ContestResource,
    DuckDBResource,
    JudgingResource,
    SandboxResource,
    ScoringResource,
)
from resources.io_manager import ALL_PARTITIONS, LazyPartitions

BINARY_VALID = dg.AssetCheckSpec(
    "binary_valid", asset="submission_binary", description="x86-64 ELF executable"
)
TELEMETRY_COMPLETE = dg.AssetCheckSpec(
    "telemetry_complete", asset="telemetry", description="one row per order of every phase and trial"
)
CORRECTNESS_100 = dg.AssetCheckSpec("correctness_100", asset="correctness", description="every report exact")
BOOK_MATCHES = dg.AssetCheckSpec(
    "final_book_matches", asset="correctness", description="phase A final L2 book"
)


def stage(context: dg.AssetExecutionContext, name: str, **metadata: Any) -> None:
    """Record a lifecycle step in the event log, where the leaderboard tails it."""
    context.log_event(
        dg.AssetObservation(
            asset_key=LIFECYCLE_ASSET, partition=context.partition_key, metadata={"stage": name, **metadata}
        )
    )


@dg.asset(partitions_def=submissions, group_name="judging", check_specs=[BINARY_VALID], kinds={"elf"})
def submission_binary(context: dg.AssetExecutionContext, bucket: BucketResource):
    """The uploaded binary, validated and pinned under ``binaries/<partition>``."""

    client = bucket.client()
    stage(context, "deploying")
    manifest = orjson.loads(client.get_bytes(keys.intake(context.partition_key)))
    info = client.head(manifest["key"])
    value: dict[str, Any] = {
        "contestant": manifest["contestant"],
        "object_key": manifest["key"],
        "filename": manifest["filename"],
        "uploaded_at": manifest["modified"],
    }
    try:
        if info is None or info.etag != manifest["etag"]:
            raise Rejected(
                "the uploaded object was replaced or deleted before judging; the new one is judged apart"
            )
        check_size(info.size)
        data = client.get_bytes(manifest["key"])
        checked = validate(data)
    except Rejected as exc:
        value.update(valid=False, reason=str(exc), size=info.size if info else 0)
    else:
        binary_key = keys.binary(context.partition_key)
        client.put_bytes(binary_key, data)
        value.update(
            valid=True,
            reason="",
            size=checked.size,
            sha256=checked.sha256,
            linkage=checked.linkage,
            binary_key=binary_key,
        )
    yield dg.Output(
        value,
        metadata={
            k: v
            for k, v in value.items()
            if k in ("contestant", "valid", "reason", "size", "sha256", "linkage")
        },
    )
    yield dg.AssetCheckResult(
        check_name="binary_valid", passed=value["valid"], metadata={"reason": value["reason"]}
    )


def slot_health(calibrations: LazyPartitions, slot: str) -> dict:
    """The slot's latest calibration, for the verdict. Never fails the judging it records: an
    unreadable or missing calibration is recorded as such (the verdict is made, and an exception
    here is not the judge's to retry)."""
    try:
        return calibrations[slot]
    except KeyError:
        return {"valid": False, "slot": slot, "reason": "this slot was never calibrated"}
    except Exception as exc:  # the bucket's errors, whatever the backend
        return {"valid": False, "slot": slot, "reason": f"its calibration could not be read: {exc}"}


@dg.multi_asset(
    outs={
        "verdict": dg.AssetOut(
            description="The judge's verdict: status, public reason, per-phase figures, scores,"
            " private diagnostics (the owner's only)",
            kinds={"json"},
        ),
        "telemetry": dg.AssetOut(
            description="One row per order of every phase and trial (send, intended, receive times,"
            " status, exact or not)",
            io_manager_key="parquet_io_manager",
            kinds={"parquet"},
        ),
    },
    # Every slot's calibration, read lazily: the judging reads the one of the slot it gets.
    ins={
        "calibration": dg.AssetIn(
            partition_mapping=dg.AllPartitionMapping(), metadata={ALL_PARTITIONS: True}
        ),
        "official_trace": TRACE_INPUT,
        "expected_reports": TRACE_INPUT,
    },
    partitions_def=submissions,
    group_name="judging",
    pool=JUDGING_POOL,
    check_specs=[TELEMETRY_COMPLETE],
)
def judging(
    context: dg.AssetExecutionContext,
    submission_binary: dict,
    official_trace: dict[str, list[bytes]],
    expected_reports: dict[str, list[bytes]],
    calibration: LazyPartitions,  # every slot's, read when asked for
    bucket: BucketResource,
    sandbox: SandboxResource,
    judging: JudgingResource,
    scoring: ScoringResource,
    contest: ContestResource,
):
    """Judge the binary on this judging's own official trace and answers, which it reads (fresh
    sandbox per phase and trial): one judging, two values, the verdict (naming the trace by its
    ``trace_id``, never its seed, and holding its slot's latest calibration) and the per-order
    telemetry it was decided from.

    The pool ``judging`` has one slot per disjoint CPU set, so two judgings never share cores.
    Only a failure of the judge itself is retried; an engine's crash is a verdict.
    """
    config = judging.config(sandbox, scoring)
    columns: dict[str, list] = {name: [] for name in TELEMETRY_COLUMNS}
    slot = None
    if not submission_binary["valid"]:
        verdict = rejected(submission_binary["reason"]).to_obj()
    else:
        current: dict[str, str] = {}

        def progress(phase: str, done: int, total: int, note: str) -> None:
            if current.get("phase") != phase:
                current["phase"] = phase
                stage(context, f"running phase {phase}", orders=total)

        with tempfile.TemporaryDirectory(prefix="qc-judge-") as tmp:
            path = Path(tmp, "engine")
            bucket.client().download(submission_binary["binary_key"], path)
            bundles = official_bundles(
                contest, config.profile, context.partition_key, official_trace, expected_reports
            )
            try:
                with sandbox.slot(config) as placed:
                    slot = sandbox.slot_key(placed)
                    context.log.info(
                        f"judging on CPUs {placed.engine_cpus} (engine) + {placed.loadgen_cpus} (load)"
                        f" of {socket.gethostname()}, {config.profile} profile, {config.scoring.name} scoring"
                    )
                    result = judge_binary(path, placed, progress, sandbox.sandbox(placed), bundles)
            except InfrastructureError as exc:
                if context.retry_number < INFRASTRUCTURE_RETRIES:
                    wait_s = infrastructure_retry_wait_s(context.retry_number)
                    context.log.error(f"judge infrastructure failure, will retry in {wait_s} s: {exc}")
                    retry = dg.RetryRequested(max_retries=INFRASTRUCTURE_RETRIES, seconds_to_wait=wait_s)
                    raise retry from exc
                # Never a verdict, never dropped: it waits for its slot to calibrate clean.
                reason = f"{WAITING_REASON}: {exc}"
                stage(context, WAITING, reason=reason, **({SLOT_METADATA: slot} if slot else {}))
                raise dg.Failure(description=reason, allow_retries=False) from exc
        result.verdict.calibration = slot_health(calibration, slot)
        verdict = result.verdict.to_obj()
        columns = result.telemetry.columns
    stage(context, "validating")
    table = pa.table(columns, schema=TELEMETRY_SCHEMA)
    verdict["profile"] = config.profile
    meta = {"status": verdict["status"], "reason": verdict["reason"]}
    if slot is not None:
        meta[SLOT_METADATA] = slot  # counted by the calibration sensor
    yield dg.Output(verdict, output_name="verdict", metadata=meta)
    yield dg.Output(table, output_name="telemetry")
    expected_rows = sum(p["orders"] for p in verdict["phases"].values())
    unique = len(set(zip(columns["phase"], columns["trial"], columns["seq"], strict=True)))
    yield dg.AssetCheckResult(
        asset_key="telemetry",
        check_name="telemetry_complete",
        passed=table.num_rows == expected_rows == unique,
        metadata={"rows": table.num_rows, "expected_rows": expected_rows, "unique_orders": unique},
    )


@dg.asset(partitions_def=submissions, group_name="judging", kinds={"duckdb"})
def metrics(
    context: dg.AssetExecutionContext, verdict: dict, telemetry: pa.Table, duckdb: DuckDBResource
) -> dg.Output:
    """The public figures of every phase, as the submission page shows them: per trial, corrected
    and service latency, send lag, orders/s and error rate from the telemetry, with what the judge
    measured beside it (engine CPU per order, load generator busy share, interference) from the
    verdict; per phase, the summary over trials (``core.trial.summarize``), the invalid trials'
    reasons and the percentile curves of the three latency series over all of its trials' orders."""
    with duckdb.connect() as con:
        con.register("t", telemetry)
        cols = con.execute(
            "SELECT phase, trial, intended_ns, sent_ns, recv_ns, exact, disturbed FROM t"
            " ORDER BY phase, trial, seq"
        ).fetchnumpy()
    stamps = ("intended_ns", "sent_ns", "recv_ns")
    disturbed = np.asarray(cols["disturbed"], dtype=bool)
    value: dict[str, Any] = {}
    for phase in trace.PHASES:
        in_phase = cols["phase"] == phase
        judged = verdict["phases"].get(phase, {})
        runs = []
        # Telemetry holds the counted trials only, numbered in the order the verdict lists them.
        for trial, figures in zip(np.unique(cols["trial"][in_phase]), judged.get("trials", []), strict=True):
            mask = in_phase & (cols["trial"] == trial)
            watched = figures.get("disturbed") is not None  # else: not watched order by order
            intended, sent, recv = (cols[k][mask] for k in stamps)
            measured = phase_metrics(
                intended,
                sent,
                recv,
                np.asarray(cols["exact"][mask]),
                interference=figures.get("interference"),
                disturbed=disturbed[mask] if watched else None,
                in_flight=trace.get_spec(verdict["profile"], phase).in_flight,
            )
            runs.append(with_judge_figures(measured, figures))
        if runs:
            value[phase] = {
                **summarize(runs).to_obj(),
                "trials": [m.to_obj() for m in runs],
                "invalid_trials": judged.get("invalid_trials", {"count": 0, "reasons": []}),
                "curves": latency_curves(
                    cols["intended_ns"][in_phase],
                    cols["sent_ns"][in_phase],
                    cols["recv_ns"][in_phase],
                    disturbed[in_phase],
                ),
            }
    figures = (
        "p50_us", "p99_us", "service_p99_us", "send_lag_p99_us", "orders_per_s", "cpu_us_per_order",
        "disturbed",
    )  # fmt: skip
    meta = {f"{p}_{k}": v[k] for p, v in value.items() for k in figures}
    return dg.Output(value, metadata={k: v for k, v in meta.items() if v is not None})


@dg.asset(partitions_def=submissions, group_name="judging", check_specs=[CORRECTNESS_100, BOOK_MATCHES])
def correctness(
    context: dg.AssetExecutionContext, verdict: dict, telemetry: pa.Table, duckdb: DuckDBResource
):
    """Exact reports per phase from the telemetry; the seed's fill-match ratio, first divergences
    and the final book from the verdict."""
    with duckdb.connect() as con:
        con.register("t", telemetry)
        rows = con.execute(
            "SELECT phase, count(*) AS orders, count(*) FILTER (WHERE exact) AS exact,"
            " count(*) FILTER (WHERE status = 'MISSING') AS missing FROM t GROUP BY phase ORDER BY phase"
        ).fetchnumpy()
    by_phase = {
        str(p): {"orders": int(o), "exact": int(e), "missing": int(m)}
        for p, o, e, m in zip(rows["phase"], rows["orders"], rows["exact"], rows["missing"], strict=True)
    }
    orders = sum(v["orders"] for v in by_phase.values())
    exact = sum(v["exact"] for v in by_phase.values())
    value = {
        "orders": orders,
        "exact": exact,
        "by_phase": by_phase,
        "fill_match_ratio": verdict.get("fill_match_ratio"),
        "divergences": verdict.get("divergences", []),
        "book_match": verdict.get("book_match"),
        "book_problems": verdict.get("book_problems", []),
    }
    yield dg.Output(
        value, metadata={"orders": orders, "exact": exact, "book_match": str(value["book_match"])}
    )
    first = value["divergences"][0] if value["divergences"] else None
    yield dg.AssetCheckResult(
        check_name="correctness_100",
        passed=fully_correct(exact, orders),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"exact": exact, "orders": orders, "first_divergence": str(first)[:500] if first else ""},
    )
    yield dg.AssetCheckResult(
        check_name="final_book_matches",
        passed=value["book_match"] is True,
        metadata={"problems": "; ".join(value["book_problems"][:5]) or "none"},
    )


@dg.asset(partitions_def=submissions, group_name="judging")
def score(
    context: dg.AssetExecutionContext,
    submission_binary: dict,
    verdict: dict,
    metrics: dict,
    correctness: dict,
    scoring: ScoringResource,
) -> dg.Output:
    """What the judge decided, as the leaderboard shows it: the verdict's scores on the contest's
    scoring preset (derived again from the verdict's trial sets, so this asset re-scores a stored
    judging without judging it again), their range over trials, the figures the ranking reads and
    the public reason; nothing private (divergences, stderr) goes into this record or its
    metadata."""
    verdict_scores = verdict["scores"] or {}
    engine_b = verdict["phases"].get("B", {})
    stored = {
        "partition": context.partition_key,
        "contestant": submission_binary["contestant"],
        "filename": submission_binary["filename"],
        "uploaded_at": submission_binary["uploaded_at"],
        "status": verdict["status"],
        "reason": verdict["reason"],
        "profile": verdict.get("profile"),
        "traces": verdict.get("traces"),
        **{k: verdict_scores.get(k, 0.0) for k in ("latency", "throughput", "correctness", "final")},
        "final_range": verdict.get("scores_range", {}).get("final"),
        "fully_correct": fully_correct(correctness["exact"], correctness["orders"]),
        "p99_us": metrics.get("C", {}).get("p99_us"),
        "orders_per_s": metrics.get("B", {}).get("orders_per_s"),
        "client_limited": engine_b.get("client_limited", False),
        "cpu_us_per_order": engine_b.get("cpu_us_per_order"),
        "scoring": verdict.get("scoring"),
        "trial_sets": verdict.get("trial_sets"),
    }
    value = rescored(stored, scoring.config())
    stage(context, value["status"], reason=value["reason"], final=value["final"])
    return dg.Output(value, metadata={k: v for k, v in value.items() if v is not None})
