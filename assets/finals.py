"""Finals: the top of the standings re-judged on one shared official trace set (``finals_trace``,
the same orders for every finalist, unlike the per-judging traces of the qualifying), ranked by the
median final score with a bootstrap confidence interval (the statistics are ``core.finals``).

The ``finals`` job runs on the organiser's request (``quantcraft finals`` or the Dagster UI):
it refreshes the standings, then judges every finalist ``repeat`` times, round-robin, on one
judging slot held throughout, so every finalist meets the same CPUs and the same drift of the host
(``finals_judgings``), and ranks them on the contest's scoring preset (``final_standings``).
"""

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import orjson

from assets.standings import standings
from assets.traces import TRACE_INPUT, finals_expected_reports, finals_trace, official_bundles
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.finals import CONFIDENCE, final_table, finalists, round_robin, run_record
from quantcraft_dagster.core.scoring import rescored
from quantcraft_dagster.judge.errors import (
    INFRASTRUCTURE_RETRIES,
    InfrastructureError,
    infrastructure_retry_wait_s,
)
from quantcraft_dagster.judge.judging import judge_binary
from quantcraft_dagster.lifecycle import FINALS_WAITING_TAG, JUDGING_POOL, WAITING_REASON
from resources import BucketResource, ContestResource, JudgingResource, SandboxResource, ScoringResource


class FinalsConfig(dg.Config):
    top: int = 10  # finalists: the first ``top`` of the standings and everyone tied with them
    repeat: int = 5  # judgings per finalist


@dg.asset(
    group_name="standings",
    pool=JUDGING_POOL,
    deps=[standings],
    kinds={"json", "bubblewrap"},
    ins={"finals_trace": TRACE_INPUT, "finals_expected_reports": TRACE_INPUT},
)
def finals_judgings(
    context: dg.AssetExecutionContext,
    config: FinalsConfig,
    finals_trace: dict[str, list[bytes]],
    finals_expected_reports: dict[str, list[bytes]],
    bucket: BucketResource,
    sandbox: SandboxResource,
    judging: JudgingResource,
    scoring: ScoringResource,
    contest: ContestResource,
) -> dg.Output[dict]:
    """The finalists (the top of the standings) and every finals judging of theirs, in judging
    order: each finalist judged ``repeat`` times, round-robin, exactly as a submission is (the
    contest's profile and validity bounds), all on the finals' one official trace set, so their
    scores compare the same orders. Public figures only, with each judging's trial sets, so the
    table (``final_standings``) is scored again on another preset without judging again."""
    client = bucket.client()
    chosen = finalists(orjson.loads(client.get_bytes(keys.STANDINGS)), config.top)
    if not chosen:
        raise dg.Failure("no contestant on the standings yet: nothing to re-judge")
    judge_config = judging.config(sandbox, scoring)
    bundles = official_bundles(contest, judge_config.profile, None, finals_trace, finals_expected_reports)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qc-finals-") as tmp:
        paths = {}
        for row in chosen:
            paths[row["partition"]] = Path(tmp, row["partition"])
            client.download(keys.binary(row["partition"]), paths[row["partition"]])
        with sandbox.slot(judge_config) as placed:
            context.log.info(f"finals on CPUs {placed.engine_cpus} (engine) + {placed.loadgen_cpus} (load)")
            for round_, row in round_robin(chosen, config.repeat):
                verdict = _judge(context, paths[row["partition"]], placed, sandbox, bundles)
                if verdict is None:  # the run waits for a quiet judge on this slot; never a partial table
                    context.instance.add_run_tags(
                        context.run.run_id, {FINALS_WAITING_TAG: sandbox.slot_key(placed)}
                    )
                    raise dg.Failure(
                        f"the finals are {WAITING_REASON}: {row['contestant']}'s judging could not be"
                        " vouched for after its retries; they run again once this slot calibrates clean"
                    )
                runs.append(run_record(round_, row, verdict))
                context.log.info(
                    f"round {round_ + 1}/{config.repeat}: {row['contestant']} {runs[-1]['final']:.2f}"
                )
    value = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": judge_config.profile,
        "top": config.top,
        "repeat": config.repeat,
        "finalists": chosen,  # their standings rows, in qualifying order
        "runs": runs,  # in judging order: the round-robin as it happened
    }
    return dg.Output(value, metadata={"finalists": len(chosen), "judgings": len(runs)})


@dg.asset(group_name="standings", kinds={"json"})
def final_standings(finals_judgings: dict, scoring: ScoringResource) -> dg.Output[dict]:
    """The final table: each finalist's median final score over its finals judgings, the 95 %
    bootstrap interval, and "=" where the interval of the difference with a neighbour includes 0.
    Every judging is scored on the contest's preset here: after the preset changes, materializing
    this asset alone re-ranks the finals (the ``rescore`` sensor does it)."""
    scale = scoring.config()
    runs = [rescored(run, scale) for run in finals_judgings["runs"]]
    rows = final_table(finals_judgings["finalists"], runs, scoring.ranking())
    value = {
        **{k: finals_judgings[k] for k in ("at", "profile", "top", "repeat")},
        "policy": scoring.ranking().policy,
        "scoring": scale.name,
        "confidence": CONFIDENCE,
        "standings": rows,
        "runs": runs,
    }
    top = "\n".join(
        f"| {'=' if r['tied'] else ''}{r['rank']} | {r['contestant']} | {r['median']:.2f} |"
        f" {r['ci'][0]:.2f}–{r['ci'][1]:.2f} | {r['qualifying_rank']} |"
        for r in rows
    )
    return dg.Output(
        value,
        metadata={
            "finalists": len(rows),
            "profile": value["profile"],
            "scoring": scale.name,
            "table": dg.MetadataValue.md(
                "| rank | contestant | median | 95 % CI | qualifying |\n|---|---|---|---|---|\n" + top
            ),
        },
    )


def _judge(
    context: dg.AssetExecutionContext, path: Path, placed, sandbox: SandboxResource, bundles
) -> dict | None:
    """One finals judging's public verdict; the judge's own failures are retried here, one judging
    at a time, as a judging run retries one (as often, after the same waits), so a hiccup of the
    host does not throw away the judgings already made. None when the retries are used up: the
    finals then stop, never ranking a finalist on fewer judgings than the others."""
    failures: list[str] = []
    while len(failures) <= INFRASTRUCTURE_RETRIES:
        if failures:
            time.sleep(infrastructure_retry_wait_s(len(failures) - 1))
        try:
            result = judge_binary(path, placed, sandbox=sandbox.sandbox(placed), bundles=bundles)
        except InfrastructureError as exc:
            context.log.warning(f"judge infrastructure failure, judging {path.name} again: {exc}")
            failures.append(str(exc))
        else:
            return result.verdict.to_obj(private=False)
    context.log.error(f"{path.name} could not be judged: {failures[-1]}")
    return None


finals_job = dg.define_asset_job(
    "finals",
    # The finals' trace set is made again each time: the same secret gives the same orders, so
    # every finals run of a contest compares the same trace, and the job needs nothing prepared.
    selection=dg.AssetSelection.assets(
        standings, finals_trace, finals_expected_reports, finals_judgings, final_standings
    ),
    description="Re-judge the top of the standings several times each and publish the final table",
)
