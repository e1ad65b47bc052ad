"""The reference client: picows on uvloop, recording the same :class:`Replay` as ``qcload``.

It is what the native client is measured against (``bench/loadgen_bench.py``) and the judge's
fallback where qcload cannot be built. One event loop on one CPU sends and receives, so parsing a
burst of reports in Python delays the next sends: phase C's send lag and phase B's ceiling are
this client's, not the engine's, on fast or bursty engines. Frames are pre-masked (``wire``),
sending is one write per batch; every data frame frees one slot of a connection's window, as in
qcload, and which order a frame answers is decided afterwards (``core.accounting``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time
from time import perf_counter_ns

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from ..core.accounting import Frame
from ..core.protocol import MAX_FRAME_BYTES
from .interference import StallWatch, run_delay_ns
from .replay import LoadPlan, Replay
from .wire import masked_text_frames

HOST = "127.0.0.1"
_OPCODES = {WSMsgType.TEXT: 1, WSMsgType.BINARY: 2, WSMsgType.CONTINUATION: 0}


class _Phase:
    """Shared per-phase state and the completion signal."""

    def __init__(self, plan: LoadPlan) -> None:
        n = len(plan.payloads)
        self.plan = plan
        self.intended = [0] * n
        self.sent = [0] * n
        self.frames: list[Frame] = []
        self.done = asyncio.get_running_loop().create_future()
        self.conns: list[_Conn] = []
        self.watch: StallWatch | None = None

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
        self.window = 0 if phase.plan.rate else phase.plan.window
        self.n_sent = 0
        self.answered = 0  # data frames received: each frees one slot of the window
        self.failure: str | None = None
        self.transport: WSTransport | None = None
        self.raw: asyncio.Transport | None = None

    @property
    def finished(self) -> bool:
        return self.failure is not None or self.answered >= len(self.seqs)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.raw = transport.underlying_transport

    def refill(self) -> None:
        """Top the window up in one write (phase A: window 1, so strictly sequential)."""
        end = min(self.answered + self.window, len(self.seqs))
        if end > self.n_sent and self.failure is None and self.raw is not None:
            self._send(end, perf_counter_ns())

    def send_next(self, now: int) -> None:
        """Open loop: send this connection's next order, stamped ``now``."""
        if self.failure is None and self.raw is not None:
            self._send(self.n_sent + 1, now)

    def _send(self, end: int, now: int) -> None:
        assert self.raw is not None  # only called once connected
        start = self.n_sent
        sent = self.phase.sent
        for seq in self.seqs[start:end]:
            sent[seq] = now
        self.n_sent = end
        self.raw.write(self.frames[start] if end - start == 1 else b"".join(self.frames[start:end]))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = perf_counter_ns()
        msg_type = frame.msg_type
        opcode = _OPCODES.get(msg_type)
        if opcode is None:
            if msg_type is WSMsgType.CLOSE:
                self.fail(f"engine closed the WebSocket (code {frame.get_close_code()})")
            return
        payload = frame.get_payload_as_bytes()
        self.phase.frames.append(
            Frame(now, self.index, payload[: MAX_FRAME_BYTES + 1], opcode, bool(frame.fin), len(payload))
        )
        if self.answered < self.n_sent:
            self.answered += 1
        if self.answered >= len(self.seqs):
            self.phase.check_done()
        elif self.window and frame.last_in_buffer:
            self.refill()

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
        if self.answered >= self.n_sent:
            return 0
        return now - self.phase.sent[self.seqs[self.answered]]


async def _run(plan: LoadPlan, progress: bool, watch: StallWatch | None) -> _Phase:
    """Connect, replay the plan, and wait until every order is answered or given up."""
    phase = _Phase(plan)
    phase.watch = watch
    frames = masked_text_frames(plan.payloads, seed=len(plan.payloads))
    owned: list[list[int]] = [[] for _ in range(plan.connections)]
    for seq, index in enumerate(plan.conn_of):
        owned[index].append(seq)
    phase.conns = [_Conn(phase, i, seqs, [frames[s] for s in seqs]) for i, seqs in enumerate(owned)]
    url = f"ws://{HOST}:{plan.port}/ws/orders"
    for conn in phase.conns:
        try:
            await ws_connect(lambda c=conn: c, url, max_frame_size=1 << 20, websocket_handshake_timeout=5)
        except Exception as exc:  # any handshake failure is the engine's, and is reported
            conn.fail(f"WebSocket connect failed: {exc.__class__.__name__}: {exc}")
    phase.check_done()
    tasks = [asyncio.create_task(_watchdog(phase))]
    if progress:
        tasks.append(asyncio.create_task(_progress(phase)))
    if plan.rate:
        tasks.append(asyncio.create_task(_open_loop(phase, plan.rate)))
    else:
        if watch is not None:
            watch.sample()  # the replay's start
        for conn in phase.conns:
            conn.refill()
    await phase.done
    if phase.watch is not None:
        phase.watch.sample()  # the last reports are in
    for task in tasks:
        task.cancel()
    if progress:
        print(
            f"progress {plan.phase} {sum(c.answered for c in phase.conns)} {len(plan.payloads)}", flush=True
        )
    for conn in phase.conns:
        if conn.transport is not None and not conn.transport.is_disconnected:
            conn.transport.disconnect()
    return phase


async def _open_loop(phase: _Phase, rate: float) -> None:
    """Send each order at its own intended time ``t0 + seq/rate``, one write per order.

    libuv timers have 1 ms granularity, so a timer only gets the sender near the next send; the
    last stretch busy-polls the event loop (``sleep(0)``), which keeps receiving and stamping
    reports while it waits, and the final microseconds spin on ``perf_counter_ns``. Each order's
    actual send time is recorded beside its intended one. Just after a send, when one is due,
    the engine's CPUs are sampled for host stalls (``phase.watch``).
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
        print(f"progress {phase.plan.phase} {sum(c.answered for c in phase.conns)} {total}", flush=True)
        await asyncio.sleep(0.25)


def replay(plan: LoadPlan, watch: StallWatch | None, progress: bool) -> Replay:
    """Replay ``plan`` on this process's event loop; the garbage collector is off meanwhile."""
    import uvloop

    gc.collect()
    gc.freeze()
    gc.disable()
    cpu0, delay0, wall0 = time.process_time(), run_delay_ns([os.getpid()]), time.perf_counter()
    try:
        phase = uvloop.run(_run(plan, progress, watch))
    finally:
        gc.enable()
    return Replay(
        intended_ns=phase.intended if plan.rate else [],
        sent_ns=phase.sent,
        frames=phase.frames,
        failures=[c.failure for c in phase.conns],
        cpu_s=time.process_time() - cpu0,
        run_delay_s=(run_delay_ns([os.getpid()]) - delay0) / 1e9,
        wall_s=time.perf_counter() - wall0,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        stall_samples=watch.samples if watch is not None else [],
    )
