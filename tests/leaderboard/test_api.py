"""JSON API, uploads and the live stream, against a real instance and bucket."""

from __future__ import annotations

import time

import pytest

from .conftest import report_score

ELF = b"\x7fELF" + b"\0" * 2000


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
    report_score(instance, "bob-1", "bob", 90.0, uploaded_at=3.0)  # tie: alice was earlier
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        board = client.get("/api/leaderboard").json()["leaderboard"]
        if len(board) == 2:
            break
        time.sleep(0.1)
    assert [(r["rank"], r["contestant"], r["final"], r["submissions"]) for r in board] == [
        (1, "alice", 90.0, 2),
        (2, "bob", 90.0, 1),
    ]


def test_private_details_need_the_owners_token(client, instance, bucket, tokens):
    import orjson

    report_score(instance, "alice-1", "alice", 80.0)
    bucket.put_bytes(
        "assets/raw_telemetry/alice-1.json",
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
    from starlette.testclient import TestClient

    from leaderboard_app.app import create_app

    report_score(instance, "a-1", "a", 10.0)
    report_score(instance, "b-1", "b", 20.0)
    boards = []
    for _ in range(2):
        with TestClient(create_app(dagster_home=str(home), bucket=bucket)) as c:
            boards.append(c.get("/api/leaderboard").json()["leaderboard"])
    assert boards[0] == boards[1] and [r["contestant"] for r in boards[0]] == ["b", "a"]
