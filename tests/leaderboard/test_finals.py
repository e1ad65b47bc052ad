"""The final table on the leaderboard: shown once the ``final_standings`` asset exists."""

from __future__ import annotations

import re

import orjson

from quantcraft_dagster.core.finals import CONFIDENCE, final_table, run_record
from quantcraft_dagster.core.keys import FINAL_STANDINGS

from .conftest import report_score


def finals_value() -> dict:
    """The asset's value as ``final_standings`` builds it, from three finalists' judgings."""
    chosen = [
        {"rank": 1, "contestant": "carol", "partition": "carol-1"},
        {"rank": 2, "contestant": "alice", "partition": "alice-1"},
        {"rank": 2, "contestant": "bob", "partition": "bob-1"},
    ]
    finals = {
        "carol": [(96.0, 99), (96.4, 99)],
        "alice": [(90.0, 100), (90.6, 100)],
        "bob": [(90.1, 100), (90.3, 100)],
    }
    runs = []
    for r in range(2):
        for row in chosen:
            final, exact = finals[row["contestant"]][r]
            verdict = {"status": "finished", "reason": "ok", "scores": {"final": final},
                       "phases": {"A": {"orders": 100, "exact": exact}}}  # fmt: skip
            runs.append(run_record(r, row, verdict))
    return {
        "at": "2025-01-01T00:00:00+00:00", "profile": "quick", "policy": "correct_first",
        "scoring": "contest", "top": 2, "repeat": 2, "confidence": CONFIDENCE,
        "standings": final_table(chosen, runs), "runs": runs,
    }  # fmt: skip


def rows_of(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'<table id="{table_id}">', 1)[1].split("</table>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]


def test_no_final_table_before_the_finals(client, instance):
    report_score(instance, "alice-1", "alice", 90.0)
    page = client.get("/").text
    assert 'id="finals"' not in page and "<h1>Leaderboard</h1>" in page
    assert client.get("/api/leaderboard").json()["finals"] is None


def test_the_final_table_shows_ranks_ties_medians_and_intervals(client, instance, bucket):
    report_score(instance, "alice-1", "alice", 90.0)
    value = finals_value()
    bucket.put_bytes(FINAL_STANDINGS, orjson.dumps(value))
    page = client.get("/").text
    assert "<h1>Final standings</h1>" in page and "Qualifying (live)" in page
    rows = rows_of(page, "finals")
    # alice and bob correct, their medians within noise of each other: tied; carol's wrong
    # reports put her below them under correct_first, whatever her score.
    assert [(r[0], r[1], r[5], r[6]) for r in rows] == [
        ("=1", "alice", "yes", "2"),
        ("=1", "bob", "yes", "2"),
        ("3", "carol", "no", "1"),
    ]
    alice = value["standings"][0]
    assert rows[0][2] == f"{alice['median']:.2f}" == "90.30"
    assert rows[0][3] == f"{alice['ci'][0]:.2f}–{alice['ci'][1]:.2f}"
    assert rows[0][4] == "90.0, 90.6"
    assert client.get("/api/leaderboard").json()["finals"]["standings"] == value["standings"]
