"""Organisers' standings: best score per contestant, from the score materializations."""

import dagster as dg
import orjson

from quantcraft_dagster import lifecycle
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.standings import rank
from resources import BucketResource, ScoringResource


@dg.asset(group_name="standings", deps=[lifecycle.SCORE_ASSET], kinds={"json"})
def standings(
    context: dg.AssetExecutionContext, bucket: BucketResource, scoring: ScoringResource
) -> dg.MaterializeResult:
    """Ranked contestants under the contest's ranking policy and scoring preset, written to the
    bucket; the top ten in the metadata ("=" marks a rank shared within the judge's noise). Every
    stored judging is scored on the preset here, so materializing this asset after the preset
    changed re-ranks the contest without judging again."""
    scale = scoring.config()
    table = rank(lifecycle.scores(context.instance, scale).values(), scoring.ranking())
    rows = [
        {"rank": s.rank, "tied": s.tied, "contestant": s.contestant, "submissions": s.submissions, **s.best}
        for s in table
    ]
    bucket.client().put_bytes(keys.STANDINGS, orjson.dumps(rows))
    top = "\n".join(
        f"| {'=' if r['tied'] else ''}{r['rank']} | {r['contestant']} | {r['final']:.2f} | {r['partition']} |"
        for r in rows[:10]
    )
    return dg.MaterializeResult(
        metadata={
            "contestants": len(rows),
            "scoring": scale.name,
            "top": dg.MetadataValue.md(
                "| rank | contestant | final | submission |\n|---|---|---|---|\n" + top
            ),
        }
    )
