"""The load generator: replays one phase at an engine and timestamps every report.

Runs as its own process inside the sandbox's network namespace (``nsenter --net``), pinned to CPUs
the engine never gets, and talks only to ``127.0.0.1``. picows on uvloop is the client: its Cython
frame parser is about twice as fast as ``websockets`` on round trips, so the harness is not what
limits a good engine. Frames are pre-masked (see ``wire``) so sending is one write per batch.

Hot-path state lives in flat Python lists indexed by seq; the parent turns them into arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import os
import pickle
import resource
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from ..core.protocol import MAX_FRAME_BYTES
from .cpus import foreground
from .interference import EngineOfUid, Meter, StallWatch, run_delay_ns
from .wire import masked_text_frames

HOST = "127.0.0.1"
MAX_KEPT_ERRORS = 50


@dataclass(slots=True)
class LoadPlan:
    """Everything the load generator needs for one phase; pickled to it by the judge."""

    phase: str
    port: int
    payloads: list[bytes]
    order_ids: list[str]
    conn_of: list[int]
    connections: int
    window: int = 1
    rate: float | None = None
    book_symbols: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    health_timeout_s: float = 30.0
    health_interval_s: float = 0.1
    report_timeout_s: float = 5.0
    time_limit_s: float = 120.0
    # Where the judge cannot see the engine's processes (a run container judging through the
    # Docker sandbox) the load generator, which shares the engine's pid namespace there, meters
    # the interference itself: the engine's CPUs and its uid (``interference.EngineOfUid``).
    meter: tuple[tuple[int, ...], int] | None = None
    # Open loop: the engine's CPUs, sampled between sends for host stalls (``interference.StallWatch``),
    # and the files listing its processes when the replay starts (bubblewrap: its cgroup's);
    # none: the processes of the meter's uid.
    engine_cpus: list[int] = field(default_factory=list)
    engine_procs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LoadResult:
    healthy: bool
    health_wait_s: float
    health_error: str | None = None
    intended_ns: list[int] = field(default_factory=list)
    sent_ns: list[int] = field(default_factory=list)
    recv_ns: list[int] = field(default_factory=list)
    received: list[bytes | None] = field(default_factory=list)
    missing_reasons: dict[int, str] = field(default_factory=dict)
    tainted: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    books: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    # The load generator's own CPU time, and the time it waited, runnable, for its CPU (other
    # work there), over the wall time of the replay: together near 1.0 means the client, not the
    # engine, set the pace (phase B's "client-limited"), however busy its CPU was.
    cpu_s: float = 0.0
    run_delay_s: float = 0.0
    wall_s: float = 0.0
    # Time the engine waited for its CPUs while other work held them during the replay
    # (``judge.interference``): filled in by the judge, or here when the plan asks; None: not measured.
    interference_ns: int | None = None
    # Open loop: the engine's CPUs sampled between sends (``interference.StallWatch.samples``).
    stall_samples: list[tuple[int, int | None, int, int]] = field(default_factory=list)
    watched_cpus: int = 0


class _Phase:
    """Shared per-phase state and the completion signal."""

    def __init__(self, plan: LoadPlan) -> None:
        n = len(plan.payloads)
        self.plan = plan
        self.seq_of = {oid: i for i, oid in enumerate(plan.order_ids)}
        self.intended = [0] * n
        self.sent = [0] * n
        self.recv = [0] * n
        self.received: list[bytes | None] = [None] * n
        self.errors: list[str] = []
        self.error_count = 0
        self.tainted: dict[int, str] = {}
        self.done = asyncio.get_running_loop().create_future()
        self.conns: list[_Conn] = []
        self.watch: StallWatch | None = None

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(text)

    def taint(self, conn: _Conn, text: str) -> None:
        """A stray frame makes the order the connection is waiting for count as wrong."""
        self.error(f"conn {conn.index}: {text}")
        if conn.oldest < conn.n_sent:
            self.tainted.setdefault(conn.seqs[conn.oldest], text)

    def check_done(self) -> None:
        if not self.done.done() and all(c.finished for c in self.conns):
            self.done.set_result(None)


class _Conn(WSListener):
    """One WebSocket connection and the orders it owns, in send order."""

    def __init__(self, phase: _Phase, index: int, seqs: list[int], frames: list[bytes]) -> None:
        self.phase = phase
        self.index = index
        self.seqs = seqs
        self.frames = frames
        self.window = phase.plan.window
        self.n_sent = 0
        self.oldest = 0  # index into seqs of the oldest unanswered order
        self.inflight = 0
        self.failure: str | None = None
        self.transport: WSTransport | None = None
        self.raw: asyncio.Transport | None = None

    @property
    def finished(self) -> bool:
        return self.failure is not None or self.oldest >= len(self.seqs)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.raw = transport.underlying_transport

    def refill(self) -> None:
        """Top the window up in one write (phase A: window 1, so strictly sequential)."""
        k = min(self.window - self.inflight, len(self.seqs) - self.n_sent)
        if k > 0 and self.failure is None and self.raw is not None:
            self._send(self.n_sent + k, perf_counter_ns())

    def send_next(self, now: int) -> None:
        """Open loop: send this connection's next order, stamped ``now``."""
        if self.failure is None and self.raw is not None:
            self._send(self.n_sent + 1, now)

    def _send(self, end: int, now: int) -> None:
        """Stamp and write the owned orders from ``n_sent`` up to ``end`` in one write."""
        start = self.n_sent
        sent = self.phase.sent
        for seq in self.seqs[start:end]:
            sent[seq] = now
        self.n_sent = end
        self.inflight += end - start
        self.raw.write(self.frames[start] if end - start == 1 else b"".join(self.frames[start:end]))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = perf_counter_ns()
        msg_type = frame.msg_type
        if msg_type is not WSMsgType.TEXT:
            if msg_type is WSMsgType.CLOSE:
                self.fail(f"engine closed the WebSocket (code {frame.get_close_code()})")
            elif msg_type is WSMsgType.BINARY or msg_type is WSMsgType.CONTINUATION:
                self._accept(None, b"", now, "binary or fragmented frame (text frames only)")
            return
        payload = frame.get_payload_as_bytes()
        self._accept(_order_id(payload), payload, now, None)
        if self.window and frame.last_in_buffer:
            self.refill()

    def _accept(self, order_id: str | None, payload: bytes, now: int, problem: str | None) -> None:
        phase = self.phase
        if len(payload) > MAX_FRAME_BYTES:
            problem = f"frame of {len(payload)} bytes over the 64 KiB limit"
            payload = payload[: MAX_FRAME_BYTES + 1]
            order_id = None
        if order_id is not None:
            seq = phase.seq_of.get(order_id)
            if seq is None or phase.plan.conn_of[seq] != self.index:
                phase.taint(self, f"report for unknown order {order_id[:40]!r}")
                return
            if phase.recv[seq]:
                phase.taint(self, f"extra report for order {order_id!r}")
                return
            if not phase.sent[seq]:
                phase.taint(self, f"report for {order_id!r} before it was sent")
                return
        else:
            if self.oldest >= self.n_sent:
                phase.error(f"conn {self.index}: unsolicited frame {payload[:60]!r}")
                return
            seq = self.seqs[self.oldest]
            phase.error(f"conn {self.index}: {problem or 'frame without an order_id'} (order seq {seq})")
        phase.recv[seq] = now
        phase.received[seq] = payload
        self.inflight -= 1
        recv = phase.recv
        seqs = self.seqs
        while self.oldest < self.n_sent and recv[seqs[self.oldest]]:
            self.oldest += 1
        if self.oldest >= len(seqs):
            phase.check_done()

    def fail(self, reason: str) -> None:
        """Give up on this connection; its unanswered orders carry ``reason``."""
        if self.finished:
            return
        self.failure = reason
        if self.transport is not None:
            self.transport.disconnect(graceful=False)
        self.phase.check_done()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.fail("engine closed the connection")

    def oldest_wait_ns(self, now: int) -> int:
        if self.inflight <= 0 or self.oldest >= self.n_sent:
            return 0
        return now - self.phase.sent[self.seqs[self.oldest]]


def _order_id(payload: bytes) -> str | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    order_id = obj.get("order_id") if isinstance(obj, dict) else None
    return order_id if isinstance(order_id, str) else None


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


async def run_phase(plan: LoadPlan, progress: bool = False, watch: StallWatch | None = None) -> _Phase:
    """Connect, replay the plan, and wait until every order is answered or given up."""
    phase = _Phase(plan)
    phase.watch = watch if plan.rate else None
    frames = masked_text_frames(plan.payloads, seed=len(plan.payloads))
    owned: list[list[int]] = [[] for _ in range(plan.connections)]
    for seq, conn in enumerate(plan.conn_of):
        owned[conn].append(seq)
    phase.conns = [_Conn(phase, i, seqs, [frames[s] for s in seqs]) for i, seqs in enumerate(owned)]
    url = f"ws://{HOST}:{plan.port}/ws/orders"
    for conn in phase.conns:
        try:
            await ws_connect(lambda c=conn: c, url, max_frame_size=1 << 20, websocket_handshake_timeout=5)
        except Exception as exc:  # any handshake failure is the engine's, and is reported
            conn.fail(f"WebSocket connect failed: {exc.__class__.__name__}: {exc}")
    if plan.rate:
        for conn in phase.conns:
            conn.window = 0
    phase.check_done()
    tasks = [asyncio.create_task(_watchdog(phase))]
    if progress:
        tasks.append(asyncio.create_task(_progress(phase)))
    if plan.rate:
        tasks.append(asyncio.create_task(_open_loop(phase, plan.rate)))
    else:
        for conn in phase.conns:
            conn.refill()
    await phase.done
    if phase.watch is not None:
        phase.watch.sample()  # the last reports are in
    for task in tasks:
        task.cancel()
    if progress:
        print(
            f"progress {plan.phase} {sum(c.oldest for c in phase.conns)} {len(plan.payloads)}",
            flush=True,
        )
    for conn in phase.conns:
        if conn.transport is not None and not conn.transport.is_disconnected:
            conn.transport.disconnect()
    return phase


async def _open_loop(phase: _Phase, rate: float) -> None:
    """Send each order at its own intended time ``t0 + seq/rate``, one write per order.

    libuv timers have 1 ms granularity, so a timer only gets the sender near the next send; the
    last stretch busy-polls the event loop (``sleep(0)``), which keeps receiving and stamping
    reports while it waits, and the final microseconds spin on ``perf_counter_ns``. (A timed
    kernel sleep instead was measured worse on a VM: its wake-ups come milliseconds late.)
    Lateness is never hidden: each order's actual send time is recorded beside its intended one,
    and a trial whose send lag is over its bound is discarded by the judge (``core.trial``). Just
    after a send, when one is due, the engine's CPUs are sampled for host stalls (``phase.watch``).
    """
    n = len(phase.sent)
    period_ns = 1e9 / rate
    intended = phase.intended
    conns = [phase.conns[c] for c in phase.plan.conn_of]
    sleep = asyncio.sleep
    watch = phase.watch
    if watch is not None:
        watch.sample()
    t0 = perf_counter_ns() + 2_000_000  # after the set-up: the first order is due on time
    for seq in range(n):
        due = intended[seq] = t0 + int(seq * period_ns)
        left = due - perf_counter_ns()
        if left > _TIMER_SLACK_NS:
            await sleep((left - _TIMER_SLACK_NS) / 1e9)
        while due - perf_counter_ns() > _SPIN_NS:
            await sleep(0)  # one loop iteration: reports that arrived are received and stamped
        while perf_counter_ns() < due:
            pass
        now = perf_counter_ns()
        conns[seq].send_next(now)
        if watch is not None and now >= watch.next_ns:
            watch.sample()  # just after a send: the next one is a period away


_TIMER_SLACK_NS = 2_000_000  # a libuv timer may fire up to ~1 ms late: wake this far ahead
_SPIN_NS = 3_000  # below this, one more loop iteration would overshoot: spin instead


async def _watchdog(phase: _Phase) -> None:
    """Per-order report timeout, and the phase's wall-clock budget (a crawling engine ends too)."""
    plan = phase.plan
    limit_ns = int(plan.report_timeout_s * 1e9)
    end = perf_counter_ns() + int(plan.time_limit_s * 1e9)
    while True:
        await asyncio.sleep(0.1)
        now = perf_counter_ns()
        if now > end:
            for conn in phase.conns:
                conn.fail(f"phase time limit of {plan.time_limit_s:g} s exceeded (engine too slow)")
            return
        for conn in phase.conns:
            if not conn.finished and conn.oldest_wait_ns(now) > limit_ns:
                conn.fail(
                    f"no report within {plan.report_timeout_s:g} s of an order (engine hung or too slow)"
                )


async def _progress(phase: _Phase) -> None:
    total = len(phase.sent)
    while True:
        done = sum(c.oldest for c in phase.conns)
        print(f"progress {phase.plan.phase} {done} {total}", flush=True)
        await asyncio.sleep(0.25)


def execute(plan: LoadPlan, progress: bool = False) -> LoadResult:
    """Health wait, the phase itself, then the final books."""
    import uvloop

    foreground(tuple(plan.cpus))
    with contextlib.suppress(OSError):  # the judge's own sender outranks anything else on its CPU
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    healthy, waited, why = wait_healthy(plan)
    if not healthy:
        return LoadResult(False, waited, why)
    meter = Meter(plan.meter[0], EngineOfUid(plan.meter[1])) if plan.meter else None
    if meter:
        meter.mark()
    if progress:
        print(f"healthy {waited:.2f}", flush=True)
    gc.collect()
    gc.freeze()
    gc.disable()
    watch = None
    if plan.rate and plan.engine_cpus:
        watch = StallWatch(plan.engine_cpus, _engine_pids(plan))
    cpu0, delay0, wall0 = time.process_time(), run_delay_ns([os.getpid()]), time.perf_counter()
    try:
        phase = uvloop.run(run_phase(plan, progress, watch))
    finally:
        gc.enable()
        if watch is not None:
            watch.close()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    if meter:
        meter.mark()
    delay_s = (run_delay_ns([os.getpid()]) - delay0) / 1e9
    missing = {}
    failure_of = {c.index: c.failure for c in phase.conns}
    for seq, recv in enumerate(phase.recv):
        if not recv:
            reason = failure_of[plan.conn_of[seq]] or "no report received"
            missing[seq] = reason if phase.sent[seq] else f"never sent: {reason}"
    return LoadResult(
        healthy=True,
        health_wait_s=waited,
        intended_ns=phase.intended if plan.rate else phase.sent,
        sent_ns=phase.sent,
        recv_ns=phase.recv,
        received=phase.received,
        missing_reasons=missing,
        tainted=phase.tainted,
        errors=phase.errors,
        error_count=phase.error_count,
        books=fetch_books(plan),
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        cpu_s=cpu_s,
        run_delay_s=delay_s,
        wall_s=wall_s,
        interference_ns=meter.ns() if meter else None,
        stall_samples=watch.samples if watch and watch.covers(_engine_pids(plan)) else [],
        watched_cpus=watch.ncpus if watch else 0,
    )


def _engine_pids(plan: LoadPlan) -> set[int]:
    if plan.meter is not None:
        return EngineOfUid(plan.meter[1]).pids()
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
    # Re-import so pickled classes name this module, not __main__, for the judge to load.
    from quantcraft_dagster.judge import loadgen

    sys.exit(loadgen.main(sys.argv[1:]))
