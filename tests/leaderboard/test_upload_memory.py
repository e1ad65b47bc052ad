"""Twenty 50 MiB uploads at once to a uvicorn process: its memory stays bounded, every object intact."""

from __future__ import annotations

import asyncio

import pytest

from bench.upload_bench import UPLOAD_BYTES, bucket_for, leaderboard, rush, stored_sha256
from leaderboard_app import contestants

UPLOADS = 20


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_twenty_concurrent_uploads_stream_in_bounded_memory(tmp_path, request, backend):
    s3_url = request.getfixturevalue("s3_server") if backend == "s3" else None
    bucket, env = bucket_for(backend, tmp_path, s3_url)
    tokens = {f"c{i:02d}": contestants.add(bucket, f"c{i:02d}") for i in range(UPLOADS)}
    with leaderboard(tmp_path, env, in_flight=UPLOADS) as (port, pid):
        result = asyncio.run(rush(port, pid, tokens))
    assert [o.status for o in result.outcomes] == [201] * UPLOADS, {o.reason for o in result.outcomes}
    assert [stored_sha256(bucket, o.key) for o in result.outcomes] == [o.sha256 for o in result.outcomes]
    # Holding the files would grow the server by 20 x 50 MiB; streamed, growth is a small constant
    # per upload plus the S3 transfer's bounded parts.
    assert result.growth < 100 * 10**6 < UPLOADS * UPLOAD_BYTES
