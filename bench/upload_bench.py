"""Upload benchmark (issue 12's goals): a deadline rush of 50 MiB uploads against the leaderboard.

    .venv/bin/python bench/upload_bench.py [--uploads 10 50 200] [--backends folder s3] [--in-flight 32]

For each bucket backend (a folder; S3 over HTTP to moto's server) and each N, starts the
leaderboard (``uvicorn``, 127.0.0.1 only) with N fresh contestants, sends their N uploads of
50 MiB at once — streamed, with ``Expect: 100-continue`` as curl sends large bodies — and prints
the server's peak RSS growth over its warmed-up idle RSS, against the bytes it accepted (the old
handler held every upload in flight in memory: 100 %), the throughput, how many stored objects
are intact (sha256) and how many uploads were refused, by status and reason.
Goals: growth ≤ 100 MB at N = 200 on both backends, every accepted upload intact, every refusal
413/429/503 with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 2**20
UPLOAD_BYTES = 50 * MiB
BOUNDARY = "qc-upload-bench"
# An ELF64 little-endian x86-64 executable header: what core.binary checks on the first bytes.
ELF_HEADER = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHI", 2, 62, 1) + bytes(40)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int  # 0: the connection broke before an answer
    reason: str
    sha256: str  # of what was sent (empty when the body was never sent)
    key: str | None = None
    retry_after: str | None = None


def payload(seed: int, size: int) -> Iterator[bytes]:
    """``size`` bytes starting with an ELF header; 1 MiB chunks, each numbered so a reordering shows."""
    block = random.Random(seed).randbytes(MiB)
    for i, start in enumerate(range(0, size, MiB)):
        prefix = ELF_HEADER if i == 0 else i.to_bytes(8, "little")
        yield (prefix + block[len(prefix) :])[: size - start]


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:
        return status, headers, b""
    return status, headers, await reader.read(int(headers.get("content-length", "0")))


async def upload(port: int, token: str, name: str, size: int, seed: int) -> Outcome:
    """One multipart upload, sent only once the server answers ``100 Continue``."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    request = (
        f"POST /api/submissions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(head) + size + len(tail)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    digest = hashlib.sha256()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status, headers, body = await _response(reader)
        if status == 100:
            writer.write(head)
            for chunk in payload(seed, size):
                digest.update(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.write(tail)
            status, headers, body = await _response(reader)
    except (ConnectionError, IndexError, ValueError) as exc:
        return Outcome(0, f"connection broke: {exc!r}", "")
    finally:
        writer.close()
    answer = orjson.loads(body) if body else {}
    return Outcome(
        status,
        answer.get("error", ""),
        digest.hexdigest() if status == 201 else "",
        answer.get("key"),
        headers.get("retry-after"),
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True, slots=True)
class Rush:
    outcomes: list[Outcome]
    idle_rss: int
    peak_rss: int
    seconds: float

    @property
    def growth(self) -> int:
        return self.peak_rss - self.idle_rss


async def rush(port: int, pid: int, tokens: dict[str, str], size: int = UPLOAD_BYTES) -> Rush:
    """Every contestant uploads at once while the server's RSS is sampled every 10 ms."""
    warm = await upload(port, next(iter(tokens.values())), "warm-up", MiB, seed=0)
    assert warm.status == 201, warm  # modules and threads the upload path loads are not growth
    idle = peak = rss_bytes(pid)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    outcomes = await asyncio.gather(
        *(upload(port, token, f"engine-{i}", size, seed=i + 1) for i, token in enumerate(tokens.values()))
    )
    seconds = time.perf_counter() - start
    done.set()
    await sampler
    return Rush(list(outcomes), idle, peak, seconds)


def stored_sha256(bucket, key: str) -> str:
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        path = Path(tmp, "object")
        bucket.download(key, path)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(MiB):
                digest.update(chunk)
        return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.2)


@contextlib.contextmanager
def leaderboard(home: Path, bucket_env: dict[str, str], in_flight: int) -> Iterator[tuple[int, int]]:
    """The app in its own uvicorn process on loopback: (port, pid), as ``quantcraft up`` runs it."""
    dagster = home / "dagster"
    dagster.mkdir(parents=True, exist_ok=True)
    (dagster / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = dict(os.environ, DAGSTER_HOME=str(dagster), QUANTCRAFT_HOME=str(home),
               QUANTCRAFT_UPLOADS_IN_FLIGHT=str(in_flight), **bucket_env)  # fmt: skip
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "--factory", "leaderboard_app.app:app_factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--timeout-graceful-shutdown", "5"],
        cwd=ROOT, env=env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192)),
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/api/leaderboard", proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3-compatible server on loopback, the stand-in for MinIO."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}", proc, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def bucket_for(backend: str, home: Path, s3_url: str | None):
    """(bucket client, the environment that points the app at the same bucket)."""
    from quantcraft_dagster.storage.bucket import LocalBucket, S3Bucket

    if backend == "folder":
        root = home / "bucket"
        return LocalBucket(root), {"QUANTCRAFT_BUCKET_BACKEND": "local", "QUANTCRAFT_BUCKET_ROOT": str(root)}
    name = f"qc-bench-{uuid.uuid4().hex[:8]}"
    key, secret = uuid.uuid4().hex, uuid.uuid4().hex  # throwaway: moto's server takes any pair
    env = {"QUANTCRAFT_BUCKET_BACKEND": "s3", "QUANTCRAFT_S3_BUCKET": name, "QUANTCRAFT_S3_ENDPOINT": s3_url,
           "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}  # fmt: skip
    return S3Bucket(name, s3_url, access_key=key, secret_key=secret), env


def run(backend: str, n: int, in_flight: int, s3_url: str | None) -> Rush:
    from leaderboard_app import contestants

    with tempfile.TemporaryDirectory(prefix="qc-upload-bench-") as tmp:
        home = Path(tmp)
        bucket, env = bucket_for(backend, home, s3_url)
        tokens = {f"c{i:03d}": contestants.add(bucket, f"c{i:03d}") for i in range(n)}
        with leaderboard(home, env, in_flight) as (port, pid):
            result = asyncio.run(rush(port, pid, tokens))
        report(backend, n, in_flight, result, bucket)
        return result


def report(backend: str, n: int, in_flight: int, result: Rush, bucket) -> None:
    accepted = [o for o in result.outcomes if o.status == 201]
    intact = sum(stored_sha256(bucket, o.key) == o.sha256 for o in accepted if o.key)
    refused = Counter((o.status, o.reason) for o in result.outcomes if o.status != 201)
    held = max(1, len(accepted)) * UPLOAD_BYTES  # what the old handler held in memory at most
    print(
        f"{backend:6} N={n:<3} in-flight bound {in_flight}: peak RSS +{result.growth / 1e6:.1f} MB "
        f"over idle {result.idle_rss / 1e6:.0f} MB = {result.growth / held:.1%} of the bytes accepted"
    )
    print(
        f"        {len(accepted)} accepted, {intact} intact (sha256), "
        f"{len(accepted) * UPLOAD_BYTES / result.seconds / 1e6:.0f} MB/s accepted in {result.seconds:.1f} s"
    )
    for (status, reason), count in sorted(refused.items()):
        retry = {o.retry_after for o in result.outcomes if o.status == status}
        print(
            f"        refused {count} x {status} (Retry-After {', '.join(sorted(map(str, retry)))}): {reason}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--backends", nargs="+", default=["folder", "s3"], choices=["folder", "s3"])
    parser.add_argument("--in-flight", type=int, default=32, help="the app's bound on uploads in flight")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    with contextlib.ExitStack() as stack:
        s3_url = stack.enter_context(moto_server()) if "s3" in args.backends else None
        for backend in args.backends:
            for n in args.uploads:
                run(backend, n, args.in_flight, s3_url)


if __name__ == "__main__":
    main()
