"""JSON API, uploads and the live stream, against a real instance and bucket."""

from __future__ import annotations

import time

import dagster as dg
import orjson
import pytest
from starlette.testclient import TestClient

from bench.upload_bench import ELF_HEADER
from leaderboard_app.app import create_app
from quantcraft_dagster import lifecycle
from quantcraft_dagster.core.scoring import TrialSet

from .conftest import report_score, run_failing_judgement

ELF = ELF_HEADER + b"\0" * 2000


def upload(client, token, data=ELF, name="engine"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/submissions", files={"file": (name, data)}, headers=headers)


def submissions(bucket):
    return [o.key for o in bucket.list("submissions/")]


def test_upload_lands_in_the_token_owners_prefix_only(client, bucket, tokens):
    res = upload(client, tokens["bob"], name="fast-engine")
    assert res.status_code == 201, res.text
    assert submissions(bucket) == ["submissions/bob/fast-engine"]
    assert bucket.get_bytes("submissions/bob/fast-engine") == ELF


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("no token", 401, "token"),
        ("forged token", 401, "token"),
        ("over 50 MiB", 413, "50 MiB"),
        ("not ELF", 400, "ELF"),
        ("empty", 400, "empty"),
    ],
)
def test_refused_uploads_write_nothing(client, bucket, tokens, case, status, message):
    alice_name_bob_secret = "alice." + tokens["bob"].split(".", 1)[1]
    token, data = {
        "no token": (None, ELF),
        "forged token": (alice_name_bob_secret, ELF),
        "over 50 MiB": (tokens["alice"], b"\x7fELF" + b"\0" * (51 * 2**20)),
        "not ELF": (tokens["alice"], b"#!/bin/sh\necho hi\n"),
        "empty": (tokens["alice"], b""),
    }[case]
    res = upload(client, token, data)
    assert res.status_code == status
    assert message in res.json()["error"]
    assert submissions(bucket) == []


def test_leaderboard_ranks_best_score_per_contestant(client, instance):
    report_score(instance, "alice-1", "alice", 70.0, uploaded_at=1.0)
    report_score(instance, "alice-2", "alice", 90.0, uploaded_at=2.0)
    report_score(instance, "bob-1", "bob", 90.0, uploaded_at=3.0)  # tied: alice was earlier, listed first
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        board = client.get("/api/leaderboard").json()["leaderboard"]
        if len(board) == 2:
            break
        time.sleep(0.1)
    assert [(r["rank"], r["tied"], r["contestant"], r["final"], r["submissions"]) for r in board] == [
        (1, True, "alice", 90.0, 2),
        (1, True, "bob", 90.0, 1),
    ]


def test_the_board_shows_what_decides_the_order_on_the_preset_in_use(home, bucket, instance, monkeypatch):
    """CPU µs per order and "≥" for a client-limited rate beside the scores, the preset named; a
    score stored with trial sets is read on the configured preset (here the seed's)."""
    monkeypatch.setenv("QUANTCRAFT_SCORING", "seed")
    app = create_app(dagster_home=str(home), bucket=bucket, dagster_url="http://dagster.test")
    with TestClient(app) as seed_client:
        metadata = {
            "partition": "alice-1", "contestant": "alice", "status": "finished", "reason": "ok",
            "final": 1.0, "uploaded_at": 1.0, "p99_us": 40.0, "orders_per_s": 7_000_000.0,
            "client_limited": True, "cpu_us_per_order": 0.35, "scoring": "contest",
            "trial_sets": [TrialSet((40.0,) * 3, 7_000_000.0, 100, 100).to_obj()],
        }  # fmt: skip
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=lifecycle.SCORE_ASSET, partition="alice-1", metadata=metadata)
        )
        deadline = time.monotonic() + 5
        while not (data := seed_client.get("/api/leaderboard").json())["leaderboard"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (row,) = data["leaderboard"]
        assert data["scoring"] == "seed" and row["final"] == pytest.approx(100.0, abs=1e-3)
        assert row["client_limited"] is True and row["cpu_us_per_order"] == 0.35
        page = seed_client.get("/").text
        assert "<strong>seed</strong> preset" in page and "<th>CPU µs/order</th>" in page
        submission = seed_client.get("/api/submissions/alice-1").json()
        assert submission["score"]["scoring"] == "seed"


def test_private_details_need_the_owners_token(client, instance, bucket, tokens):
    report_score(instance, "alice-1", "alice", 80.0)
    bucket.put_bytes(
        "assets/verdict/alice-1.json",
        orjson.dumps({"divergences": [{"order_id": "A-1"}], "stderr_tail": "secret stderr", "reason": "x"}),
    )
    time.sleep(0.5)
    public = client.get("/api/submissions/alice-1").json()
    assert public["score"]["final"] == 80.0 and public["private"] is None
    other = client.get(
        "/api/submissions/alice-1", headers={"Authorization": f"Bearer {tokens['bob']}"}
    ).json()
    assert other["private"] is None
    own = client.get(
        "/api/submissions/alice-1", headers={"Authorization": f"Bearer {tokens['alice']}"}
    ).json()
    assert own["private"]["stderr_tail"] == "secret stderr"
    assert client.get("/api/submissions/nope").status_code == 404


def test_stream_pushes_a_new_score(client, instance):
    with client.websocket_connect("/ws") as ws:
        init = ws.receive_json()
        assert init["type"] == "init" and init["leaderboard"] == []
        start = time.monotonic()
        report_score(instance, "carol-1", "carol", 55.5)
        while True:
            msg = ws.receive_json()
            if msg["type"] == "final_score":
                break
        assert time.monotonic() - start < 1.0
        assert msg["score"]["contestant"] == "carol"
        assert msg["standing"]["rank"] == 1 and msg["standing"]["contestant"] == "carol"


def test_restarted_app_shows_the_same_standings(home, bucket, instance):
    report_score(instance, "a-1", "a", 10.0)
    report_score(instance, "b-1", "b", 20.0)
    boards = []
    for _ in range(2):
        with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as c:
            boards.append(c.get("/api/leaderboard").json()["leaderboard"])
    assert boards[0] == boards[1] and [r["contestant"] for r in boards[0]] == ["b", "a"]


def test_a_token_in_the_url_is_ignored(client, instance, bucket, tokens):
    report_score(instance, "alice-1", "alice", 80.0)
    bucket.put_bytes("assets/verdict/alice-1.json", orjson.dumps({"stderr_tail": "secret stderr"}))
    wait_for(client, "alice-1")
    assert client.get(f"/api/submissions/alice-1?token={tokens['alice']}").json()["private"] is None
    res = client.post(f"/api/submissions?token={tokens['alice']}", files={"file": ("engine", ELF)})
    assert res.status_code == 401 and submissions(bucket) == []


@pytest.mark.parametrize("bound", [0, 1])
def test_uploads_past_the_bound_are_refused_with_retry_after(home, bucket, tokens, bound):
    """Bound 0 refuses every upload; bound 1 takes them one after another (the slot is given back)."""
    with TestClient(create_app(dagster_home=str(home), bucket=bucket, uploads_in_flight=bound)) as c:
        answers = [upload(c, tokens["alice"], name=f"e{i}") for i in range(2)]
    if bound:
        assert [a.status_code for a in answers] == [201, 201]
        assert submissions(bucket) == ["submissions/alice/e0", "submissions/alice/e1"]
    else:
        assert [a.status_code for a in answers] == [503, 503] and submissions(bucket) == []
        assert answers[0].headers["retry-after"].isdigit() and "retry" in answers[0].json()["error"]


def wait_for(client, partition: str, stage: str | None = None) -> dict:
    """The submission's public view once the app's follower has read it (at the given stage)."""
    deadline = time.monotonic() + 5
    while True:
        res = client.get(f"/api/submissions/{partition}")
        if res.status_code == 200 and stage in (None, res.json()["status"]["stage"]):
            return res.json()
        assert time.monotonic() < deadline, res.text
        time.sleep(0.05)


PRIVATE = {
    "divergences": "[{'phase': 'B', 'order_id': 'ORD-4711', 'reason': 'fill price 101.25 != 101.20'}]",
    "book_problems": "AAPL bid 100.50 x 30 != 100.50 x 20 (maker ORD-4711)",
    "protocol_errors": "stray frame for ORD-4711",
    "stderr_tail": "segfault near ORD-4711",
}


def test_public_views_show_status_and_reason_never_diagnostics(client, instance, bucket, tokens):
    """Even a score record carrying the verdict's private fields is shown without them."""
    verdict = {"status": "finished", "reason": "698 of 290000 reports differ", **PRIVATE}
    bucket.put_bytes("assets/verdict/alice-1.json", orjson.dumps(verdict))
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        metadata = {"partition": "alice-1", "contestant": "alice", "status": "finished", "final": 71.5,
                    "reason": verdict["reason"], "uploaded_at": 1.0, **PRIVATE}  # fmt: skip
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=lifecycle.SCORE_ASSET, partition="alice-1", metadata=metadata)
        )
        pushed = []
        while not pushed or pushed[-1]["type"] != "final_score":
            pushed.append(ws.receive_json())
    public = wait_for(client, "alice-1")
    views = {
        "stream": orjson.dumps(pushed).decode(),
        "submission api": orjson.dumps(public).decode(),
        "as another contestant": client.get(
            "/api/submissions/alice-1", headers={"Authorization": f"Bearer {tokens['bob']}"}
        ).text,
        "leaderboard api": client.get("/api/leaderboard").text,
        "page": client.get("/").text + client.get("/submissions/alice-1").text,
    }
    for name, text in views.items():
        assert "ORD-4711" not in text and "segfault" not in text, name
    assert public["status"]["stage"] == "finished" and public["score"]["reason"] == verdict["reason"]
    assert public["status"]["reason"] == verdict["reason"]
    own = client.get("/api/submissions/alice-1", headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert own.json()["private"] == {k: verdict[k] for k in PRIVATE}


def test_a_judging_run_that_failed_without_a_score_shows_failed(client, instance):
    """As ``quantcraft status`` says: the leaderboard never leaves it on 'running phase B'."""
    partition = "alice-20260101T000000-abc"
    run_failing_judgement(instance, partition)
    shown = wait_for(client, partition, stage="failed")
    assert shown["status"]["reason"] == lifecycle.INFRASTRUCTURE_FAILURE
    recent = client.get("/api/leaderboard").json()["recent"]
    assert [(r["partition"], r["stage"]) for r in recent] == [(partition, "failed")]
    assert lifecycle.states(instance)[partition].stage == "failed"
