"""``quantcraft finals`` with no stack running: the job in process against the state folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
import orjson
import pytest

from quantcraft_dagster import lifecycle
from quantcraft_dagster.cli_stack import print_finals
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.keys import FINAL_STANDINGS
from quantcraft_dagster.storage.bucket import LocalBucket

from .servers import free_port


@pytest.mark.slow
def test_finals_in_process_rank_the_correct_engine_first(engines, tmp_path, capsys):
    home = tmp_path / "state"
    (home / "dagster").mkdir(parents=True)
    bucket = LocalBucket(home / "bucket")
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        for contestant, variant, final, correct in [
            ("carol", "lifo_priority", 91.0, False),
            ("alice", "engine", 90.0, True),
        ]:
            partition = f"{contestant}-1"
            bucket.put_file(keys.binary(partition), engines / variant)
            metadata = {"partition": partition, "contestant": contestant, "status": "finished",
                        "reason": "ok", "final": final, "final_range": [final, final],
                        "fully_correct": correct, "uploaded_at": time.time()}  # fmt: skip
            instance.report_runless_asset_event(
                dg.AssetMaterialization(lifecycle.SCORE_ASSET, partition=partition, metadata=metadata)
            )
    env = {
        **os.environ,
        "QUANTCRAFT_HOME": str(home),
        "QUANTCRAFT_PROFILE": "quick",
        "QUANTCRAFT_DAGSTER_URL": f"http://127.0.0.1:{free_port()}",  # no stack there
    }
    for name in ("DAGSTER_HOME", "QUANTCRAFT_BUCKET_ROOT", "QUANTCRAFT_BUCKET_BACKEND"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-m", "quantcraft_dagster.cli", "finals", "--top", "2", "--repeat", "2", "--json"],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    value = orjson.loads(out.stdout)
    assert value == orjson.loads(bucket.get_bytes(FINAL_STANDINGS))
    assert [(r["contestant"], r["rank"], r["fully_correct"]) for r in value["standings"]] == [
        ("alice", 1, True),
        ("carol", 2, False),
    ]
    assert value["profile"] == "quick" and value["repeat"] == 2
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey("final_standings")) is not None
    print_finals(value)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["1", "alice"] and lines[3].split()[:2] == ["2", "carol"]
    assert lines[3].endswith("(wrong reports)") and not lines[2].endswith("(wrong reports)")
