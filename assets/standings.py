"""Organisers' standings: best score per contestant, from the score materializations."""

import dagster as dg
import orjson

from quantcraft_dagster import lifecycle
from quantcraft_dagster.core.standings import rank
from resources import BucketResource


@dg.asset(group_name="standings", deps=[lifecycle.SCORE_ASSET], kinds={"json"})
def standings(context: dg.AssetExecutionContext, bucket: BucketResource) -> dg.MaterializeResult:
    """Ranked contestants, written to ``standings.json``; the top ten in the metadata."""
    table = rank(lifecycle.scores(context.instance).values())
    rows = [
        {"rank": s.rank, "contestant": s.contestant, "submissions": s.submissions, **s.best} for s in table
    ]
    bucket.client().put_bytes("standings.json", orjson.dumps(rows))
    top = "\n".join(
        f"| {r['rank']} | {r['contestant']} | {r['final']:.2f} | {r['partition']} |" for r in rows[:10]
    )
    return dg.MaterializeResult(
        metadata={
            "contestants": len(rows),
            "top": dg.MetadataValue.md(
                "| rank | contestant | final | submission |\n|---|---|---|---|\n" + top
            ),
        }
    )
