"""The real submission sensor against both bucket backends (S3 over HTTP to moto's server)."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import orjson
import pytest

from quantcraft_dagster.core.keys import intake as intake_key
from quantcraft_dagster.definitions import defs
from resources import BucketResource


@pytest.fixture(params=["local", "s3"])
def resource(request, tmp_path):
    if request.param == "local":
        return BucketResource(backend="local", root=str(tmp_path / "bucket"))
    url = request.getfixturevalue("s3_server")
    return BucketResource(
        backend="s3", bucket=f"qc-{uuid.uuid4().hex[:10]}", endpoint_url=url, access_key="t", secret_key="t"
    )


def tick(instance, resource, cursor=None):
    """One sensor evaluation, with its partition requests applied as the daemon would."""
    sensor = defs().get_sensor_def("submission_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"bucket": resource}) as ctx:
        result = sensor(ctx)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_uploads_become_partitions_and_runs_once(resource):
    client = resource.client()
    client.put_bytes("submissions/alice/engine", b"\x7fELF-a")
    client.put_bytes("submissions/bob/engine", b"\x7fELF-b")
    client.put_bytes("submissions/notes.txt", b"wrong layout")
    with dg.instance_for_test() as instance:
        first = tick(instance, resource)
        assert sorted(r.tags["quantcraft/contestant"] for r in first.run_requests) == ["alice", "bob"]
        keys = {r.run_key for r in first.run_requests}
        assert all("@" in k and k.startswith("submissions/") for k in keys)
        partitions = instance.get_dynamic_partitions("submissions")
        assert sorted(partitions) == sorted(r.partition_key for r in first.run_requests)
        manifest = orjson.loads(client.get_bytes(intake_key(first.run_requests[0].partition_key)))
        assert manifest["key"].startswith("submissions/")
        skipped = [e for e in first.asset_events if e.asset_key == dg.AssetKey("rejected_uploads")]
        assert [e.metadata["key"].value for e in skipped] == ["submissions/notes.txt"]

        again = tick(instance, resource, first.cursor)  # a re-listing: nothing new, nothing logged
        assert again.run_requests == [] and again.asset_events == []

        client.put_bytes("submissions/alice/engine", b"\x7fELF-a2")  # re-upload: a new submission
        third = tick(instance, resource, again.cursor)
        assert [r.tags["quantcraft/contestant"] for r in third.run_requests] == ["alice"]
        assert third.run_requests[0].run_key not in keys
        assert len(instance.get_dynamic_partitions("submissions")) == 3


def test_a_restart_without_cursor_never_duplicates_runs(resource):
    """Losing the cursor re-requests the same run keys, which Dagster deduplicates."""
    client = resource.client()
    client.put_bytes("submissions/carol/e", b"x")
    with dg.instance_for_test() as instance:
        first = tick(instance, resource)
        fresh = tick(instance, resource, None)
        assert [r.run_key for r in fresh.run_requests] == [r.run_key for r in first.run_requests]
        assert [r.partition_key for r in fresh.run_requests] == [r.partition_key for r in first.run_requests]
        assert len(instance.get_dynamic_partitions("submissions")) == 1


def test_burst_of_1000_uploads(resource, monkeypatch):
    monkeypatch.setenv("QUANTCRAFT_UPLOADS_PER_WINDOW", "0")  # 20 uploads each: the limits are
    monkeypatch.setenv("QUANTCRAFT_MAX_PENDING_UPLOADS", "0")  # tested in test_upload_limits.py
    client = resource.client()
    for i in range(1_000):
        client.put_bytes(f"submissions/c{i % 50:03d}/engine-{i:04d}", f"{i}".encode())
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        result = tick(instance, resource)
        elapsed = time.perf_counter() - start
        partitions = instance.get_dynamic_partitions("submissions")
        assert len(result.run_requests) == 1_000
        assert len(partitions) == len(set(partitions)) == 1_000
        assert len({r.run_key for r in result.run_requests}) == 1_000
        assert tick(instance, resource, result.cursor).run_requests == []
        print(f"1,000 new objects in one tick: {elapsed:.2f} s")
