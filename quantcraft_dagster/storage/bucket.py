"""The bucket holding uploads, traces, telemetry and asset values.

Two backends behind one small interface with the same keys: a folder on disk (embedded default)
and S3 over HTTP via boto3 (MinIO in production, moto's server in tests). Listing is ordered by
key and paginated, as S3 does, so callers never assume one page. Files and streams are written in
bounded chunks, never read whole, so a burst of 50 MiB uploads costs disk and time, not memory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..settings import Settings

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    modified: float  # seconds since the epoch


class Bucket(Protocol):
    def put_bytes(self, key: str, data: bytes) -> ObjectInfo: ...

    def put_file(self, key: str, path: Path) -> ObjectInfo: ...

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        """Store what ``stream`` holds from its current position to its end."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def download(self, key: str, path: Path) -> None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def describe(self) -> str: ...


def check_key(key: str) -> str:
    """Keys are relative POSIX paths without '..', empty parts or control characters."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in key)
    ):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalBucket:
    """A folder as a bucket; writes are atomic (temp file + rename) so readers never see halves."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        # A cheap change token: a rewrite changes mtime or size, like a new ETag would.
        etag = hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode()).hexdigest()[:16]
        return ObjectInfo(key, etag, st.st_size, st.st_mtime)

    def _write(self, key: str, writer) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._info(key, path)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self._write(key, lambda fh: fh.write(data))

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        with open(path, "rb") as src:
            return self.put_stream(key, src)

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        return self._write(key, lambda fh: shutil.copyfileobj(stream, fh, CHUNK))

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def download(self, key: str, path: Path) -> None:
        shutil.copyfile(self._path(key), path)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return self._info(key, path) if path.is_file() else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = Path(dirpath).relative_to(base).as_posix()
            for name in filenames:
                if name.startswith(".upload-"):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        for key in sorted(found):
            try:
                yield self._info(key, base / key)
            except FileNotFoundError:
                continue

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def describe(self) -> str:
        return f"folder {self.root}"


class S3Bucket:
    """An S3 bucket through boto3; ``endpoint_url`` points at MinIO (or moto in tests).

    Every put goes through one managed transfer (multipart past 8 MiB) shared by the whole process:
    a file is read part by part as it is sent, and the parts of streams held in memory are bounded
    for all concurrent puts together — (in-memory chunks + submitters) x 8 MiB = 32 MiB — not per put.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        create: bool = True,
    ) -> None:
        import boto3
        from botocore.config import Config
        from s3transfer.manager import TransferConfig, TransferManager

        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            # botocore waits 60 s per connect and per read by default, each of 5 attempts: an
            # endpoint that hangs (MinIO down behind a live address) held a call for 5 minutes.
            # Bounded here, a refused connection fails in seconds and a hung one in about 2.5 min.
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 5, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )
        self.transfers = TransferManager(
            self.client,
            TransferConfig(
                multipart_threshold=8 * CHUNK,
                multipart_chunksize=8 * CHUNK,
                max_request_concurrency=4,
                max_submission_concurrency=1,
                max_in_memory_upload_chunks=3,
            ),
        )
        if create:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        resp = self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data)
        return ObjectInfo(key, resp["ETag"].strip('"'), len(data), 0.0)

    def _upload(self, key: str, source: str | IO[bytes]) -> ObjectInfo:
        self.transfers.upload(source, self.bucket, check_key(key)).result()
        info = self.head(key)
        assert info is not None
        return info

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        return self._upload(key, str(path))

    def put_stream(self, key: str, stream: IO[bytes]) -> ObjectInfo:
        return self._upload(key, stream)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"].read()

    def download(self, key: str, path: Path) -> None:
        self.client.download_file(self.bucket, check_key(key), str(path))

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            key, resp["ETag"].strip('"'), resp["ContentLength"], resp["LastModified"].timestamp()
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    obj["Key"], obj["ETag"].strip('"'), obj["Size"], obj["LastModified"].timestamp()
                )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint_url or 'AWS'}"


@functools.lru_cache(maxsize=8)
def connect(backend: str, root: str, name: str, endpoint: str, region: str, key: str, secret: str) -> Bucket:
    """One client per configuration and process: an S3 client holds a connection pool and a
    transfer manager whose memory bound is per process, not per caller."""
    if backend == "local":
        return LocalBucket(Path(root))
    if backend == "s3":
        return S3Bucket(name, endpoint or None, region, key or None, secret or None)
    raise ValueError(f"unknown bucket backend {backend!r}: use 'local' or 's3'")


def from_settings(s: Settings) -> Bucket:
    """The bucket outside Dagster (leaderboard, CLI), configured as the code location's."""
    return connect(
        s.bucket_backend, str(s.bucket_root), s.s3_bucket, s.s3_endpoint, s.s3_region, s.s3_access_key,
        s.s3_secret_key,
    )  # fmt: skip
