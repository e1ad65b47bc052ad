"""The load generator process: waits for the engine's health, replays one phase, reads the books.

Runs as its own process inside the sandbox's network namespace (``nsenter --net``, or an exec in
the Docker sandbox's probe), pinned to CPUs the engine never gets, at the highest priority, and
talks only to ``127.0.0.1``. The replay itself is a client's (``LoadPlan.client``): the native
``qcload`` by default, the picows reference on request; what each frame answers is decided
afterwards, the same way for both (``core.accounting``).

``python -m quantcraft_dagster.judge.loadgen PLAN RESULT``: a pickled :class:`LoadPlan` in, a
pickled :class:`LoadResult` out; progress lines on stdout.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pickle
import resource
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from ..core.accounting import account
from ..core.trial import replay_interference
from . import native_client, picows_client
from .cpus import foreground
from .interference import EngineOfUid, StallWatch, WatchFiles, with_threads
from .replay import LoadPlan, LoadResult

HOST = "127.0.0.1"


def _http_get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    """One request; the connection is then reset, not closed. A server that closes first keeps
    the connection in TIME_WAIT for a minute, on its port: the Docker sandbox's engines share one
    network namespace, and the next engine of the judging could not bind that port without
    ``SO_REUSEADDR``. A reset leaves nothing behind on either side."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.connect()  # set before anything closes it: a "Connection: close" reply closes it early
        assert conn.sock is not None
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20)
    finally:
        conn.close()


def wait_healthy(plan: LoadPlan) -> tuple[bool, float, str | None]:
    """Poll ``/health`` every 100 ms until 200 or the deadline (docs/protocol.md section 2)."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < plan.health_timeout_s:
        try:
            status, _ = _http_get(plan.port, "/health", timeout=1.0)
            if status == 200:
                return True, time.monotonic() - start, None
            last = f"/health answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"/health: {exc.__class__.__name__}: {exc}"
        time.sleep(plan.health_interval_s)
    return (
        False,
        time.monotonic() - start,
        f"not healthy after {plan.health_timeout_s:.0f} s ({last})",
    )


def fetch_books(plan: LoadPlan) -> dict[str, Any]:
    books: dict[str, Any] = {}
    for symbol in plan.book_symbols:
        try:
            status, body = _http_get(plan.port, f"/orderbook?symbol={symbol}", timeout=5.0)
            books[symbol] = orjson.loads(body) if status == 200 else f"/orderbook answered {status}"
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as exc:
            books[symbol] = f"/orderbook failed: {exc}"
    return books


def execute(plan: LoadPlan, progress: bool = False) -> LoadResult:
    """Health wait, the phase itself with the plan's client, then the final books."""
    foreground(tuple(plan.cpus))
    with contextlib.suppress(OSError):  # the judge's own sender outranks anything else on its CPU
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    healthy, waited, why = wait_healthy(plan)
    if not healthy:
        return LoadResult(False, waited, why)
    if progress:
        print(f"healthy {waited:.2f}", flush=True)
    files = WatchFiles.of(plan.engine_cpus, _engine_pids(plan), plan.usage_file) if plan.engine_cpus else None
    if plan.client == "native":
        replay = native_client.replay(plan, files, progress)
    else:
        watch = StallWatch(files) if files is not None else None
        try:
            replay = picows_client.replay(plan, watch, progress)
        finally:
            if watch is not None:
                watch.close()
    samples, interference = replay.stall_samples, None
    if files is not None and len(samples) >= 2:
        new = files.new_threads(_engine_pids(plan))
        last = with_threads(samples[-1], new) if new else samples[-1]
        interference = replay_interference(samples[0], last, len(files.cpus))
        if new:
            samples = []  # its new threads ran unwatched: no window can tell its time from the host's
    accounted = account(plan.conn_of, plan.order_ids, replay.sent_ns, replay.frames, replay.failures)
    return LoadResult(
        healthy=True,
        health_wait_s=waited,
        intended_ns=replay.intended_ns or replay.sent_ns,
        sent_ns=replay.sent_ns,
        recv_ns=accounted.recv_ns,
        received=accounted.received,
        missing_reasons=accounted.missing_reasons,
        tainted=accounted.tainted,
        errors=accounted.errors,
        error_count=accounted.error_count,
        books=fetch_books(plan),
        peak_rss_bytes=max(replay.peak_rss_bytes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        cpu_s=replay.cpu_s,
        run_delay_s=replay.run_delay_s,
        wall_s=replay.wall_s,
        interference=interference,
        stall_samples=samples if plan.rate else [],
        watched_cpus=len(files.cpus) if files else 0,
        client=plan.client,
    )


def _engine_pids(plan: LoadPlan) -> set[int]:
    if plan.engine_uid is not None:
        return EngineOfUid(plan.engine_uid).pids()
    found: set[int] = set()
    for path in plan.engine_procs:
        with contextlib.suppress(OSError, ValueError):
            found.update(int(pid) for pid in Path(path).read_text().split())
    return found


def main(argv: list[str]) -> int:
    """``python -m quantcraft_dagster.judge.loadgen PLAN RESULT``: pickles in, pickles out."""
    plan_path, result_path = argv
    with open(plan_path, "rb") as fh:
        plan: LoadPlan = pickle.load(fh)
    result = execute(plan, progress=True)
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    # Re-import so this module's globals are the package's, not __main__'s.
    from quantcraft_dagster.judge import loadgen

    sys.exit(loadgen.main(sys.argv[1:]))
