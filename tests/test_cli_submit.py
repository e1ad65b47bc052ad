"""``quantcraft submit``: the leaderboard's size and header rules before a byte is sent, then a stream."""

from __future__ import annotations

import pytest

from bench.upload_bench import ELF_HEADER
from quantcraft_dagster import cli
from quantcraft_dagster.storage.bucket import LocalBucket


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_BUCKET_BACKEND", "local")
    monkeypatch.setenv("QUANTCRAFT_BUCKET_ROOT", str(tmp_path / "bucket"))
    return LocalBucket(tmp_path / "bucket")


def test_an_engine_is_uploaded_whole(bucket, tmp_path):
    engine = tmp_path / "engine"
    engine.write_bytes(ELF_HEADER + bytes(range(256)) * 8192)
    assert cli.main(["submit", "--contestant", "alice", str(engine)]) == 0
    assert bucket.get_bytes("submissions/alice/engine") == engine.read_bytes()


@pytest.mark.parametrize(("content", "reason"), [(b"#!/bin/sh\n", "script"), (b"", "empty")])
def test_a_wrong_file_is_refused_before_upload(bucket, tmp_path, capsys, content, reason):
    script = tmp_path / "engine.sh"
    script.write_bytes(content)
    assert cli.main(["submit", "--contestant", "alice", "--name", "engine", str(script)]) == 2
    assert reason in capsys.readouterr().err
    assert list(bucket.list("submissions/")) == []
