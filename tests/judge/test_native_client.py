"""qcload, the load generator's native client, against the example engine and against servers that
answer with malformed and hostile frames: it always ends, with every frame bounded and a reason
per connection it gave up, and it replays as an unprivileged uid."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantcraft_dagster.core import check
from quantcraft_dagster.core.accounting import account
from quantcraft_dagster.judge import native_client
from quantcraft_dagster.judge.bundles import phase_bundle
from quantcraft_dagster.judge.replay import LoadPlan
from tests.servers import free_port

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def plan_for(port: int, n: int = 20, connections: int = 1, **kw) -> LoadPlan:
    payloads = [orjson.dumps({"seq": i, "order_id": f"T-{i}"}) for i in range(n)]
    fields = dict(
        phase="A", port=port, payloads=payloads, order_ids=[f"T-{i}" for i in range(n)],
        conn_of=[i % connections for i in range(n)], connections=connections, window=1,
        report_timeout_s=1.0, time_limit_s=5.0,
    )  # fmt: skip
    fields.update(kw)
    return LoadPlan(**fields)


def read_frame(sock: socket.socket) -> bytes | None:
    """One masked client frame's payload, or None when the client is gone."""
    head = _recv_exactly(sock, 2)
    if head is None:
        return None
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", _recv_exactly(sock, 2) or b"\0\0")[0]
    elif n == 127:
        n = struct.unpack(">Q", _recv_exactly(sock, 8) or b"\0" * 8)[0]
    key = _recv_exactly(sock, 4) or b"\0" * 4
    body = _recv_exactly(sock, n) or b""
    return bytes(b ^ key[i % 4] for i, b in enumerate(body))


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def server_frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return bytes((first, 126)) + struct.pack(">H", n) + payload
    return bytes((first, 127)) + struct.pack(">Q", n) + payload


Behaviour = Callable[[socket.socket], None]


class FakeEngine:
    """A WebSocket server on loopback whose every connection runs ``behaviour`` after the upgrade
    (or instead of it, with ``upgrade=False``)."""

    def __init__(self, behaviour: Behaviour, upgrade: bool = True) -> None:
        self.behaviour, self.upgrade = behaviour, upgrade
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.peers: list[tuple[str, int]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            self.peers.append(peer)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            if self.upgrade:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in request.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
            with contextlib.suppress(OSError):
                self.behaviour(sock)

    def close(self) -> None:
        self.listener.close()


def echo_reports(sock: socket.socket) -> None:
    while (payload := read_frame(sock)) is not None:
        order_id = orjson.loads(payload)["order_id"]
        sock.sendall(server_frame(orjson.dumps({"order_id": order_id, "status": "REJECTED", "fills": []})))


def replay_against(behaviour: Behaviour, upgrade: bool = True, **plan_kw):
    engine = FakeEngine(behaviour, upgrade)
    try:
        plan = plan_for(engine.port, **plan_kw)
        started = time.monotonic()
        result = native_client.replay(plan, None, progress=False)
        return plan, result, time.monotonic() - started
    finally:
        engine.close()


def test_replays_a_correct_server_in_order():
    plan, result, _ = replay_against(echo_reports, n=50, connections=3, window=4)
    assert result.failures == [None, None, None]
    assert len(result.frames) == 50 and all(result.sent_ns) and result.intended_ns == []
    out = account(plan.conn_of, plan.order_ids, result.sent_ns, result.frames, result.failures)
    assert all(out.recv_ns) and not out.errors and not out.missing_reasons


def test_open_loop_sends_each_order_at_its_time():
    _plan, result, _ = replay_against(echo_reports, n=200, connections=2, rate=20_000.0)
    lag = [s - i for s, i in zip(result.sent_ns, result.intended_ns, strict=True)]
    assert result.failures == [None, None] and min(lag) >= 0
    assert result.intended_ns[-1] - result.intended_ns[0] == pytest.approx(199 / 20_000 * 1e9, rel=1e-3)


def test_phase_a_against_the_example_engine(engines):
    bundle = phase_bundle("quick", "A")
    port = free_port()
    proc = subprocess.Popen([str(engines / "engine"), "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        n = 500
        ids = [o.order_id for o in bundle.orders[:n]]
        plan = LoadPlan("A", port, bundle.payloads[:n], ids, conn_of=[0] * n, connections=1)
        result = native_client.replay(plan, None, progress=False)
    finally:
        proc.kill()
        proc.wait()
    out = account(plan.conn_of, plan.order_ids, result.sent_ns, result.frames, result.failures)
    checked = check.check_phase("A", bundle.orders[:n], bundle.expected[:n], out.received, {}, {})
    assert checked.exact.all()
    assert result.cpu_s > 0 and result.wall_s >= result.cpu_s / 2


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
def test_replays_as_an_unprivileged_uid():
    """The socket qcload connects with belongs to LOADGEN_UID (the kernel's table of sockets)."""
    owners = []

    def note_owner(sock: socket.socket) -> None:
        port = sock.getpeername()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                owners.append(int(fields[7]))
        echo_reports(sock)

    replay_against(note_owner, n=3)
    assert owners == [native_client.LOADGEN_UID]


def close_after_one(sock: socket.socket) -> None:
    read_frame(sock)
    sock.sendall(server_frame(struct.pack(">H", 1008) + b"bye", opcode=8))


HOSTILE: dict[str, tuple[Behaviour, str]] = {
    "close frame": (close_after_one, "engine closed the WebSocket (code 1008)"),
    "disconnect": (lambda s: (read_frame(s), s.shutdown(socket.SHUT_RDWR)), "engine closed the connection"),
    "silence": (lambda s: (read_frame(s), time.sleep(3)), "no report within 1 s of an order"),
    "frame over 1 MiB": (
        lambda s: s.sendall(bytes((0x81, 127)) + struct.pack(">Q", 2**62)),
        "over the 1 MiB limit",
    ),
    "reserved bits": (lambda s: s.sendall(bytes((0xC1, 1)) + b"x"), "reserved bits"),
    "ping of 200 bytes": (
        lambda s: s.sendall(bytes((0x89, 126, 0, 200)) + b"p" * 200),
        "invalid control frame",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_server_ends_the_connection_with_a_reason(case):
    behaviour, reason = HOSTILE[case]
    _, result, took = replay_against(behaviour, n=5)
    assert result.failures[0] is not None and reason in result.failures[0]
    assert took < 4


def test_no_upgrade_is_a_connect_failure():
    def http_404(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    _, result, _ = replay_against(http_404, upgrade=False, n=3)
    assert result.failures == ["WebSocket connect failed: the engine answered 'HTTP/1.1 404 Not Found'"]
    assert result.frames == [] and not any(result.sent_ns)


def test_ping_is_answered_and_big_reports_are_cut_at_64_kib():
    def ping_then_big(sock: socket.socket) -> None:
        sock.sendall(server_frame(b"hi", opcode=9))
        read_frame(sock)  # the pong or the order, whichever came first
        sock.sendall(server_frame(b"x" * 300_000))
        time.sleep(0.5)  # closing with the other frame unread would reset the connection

    _, result, _ = replay_against(ping_then_big, n=1, report_timeout_s=2.0)
    assert len(result.frames) == 1
    big = result.frames[0]
    assert big.declared == 300_000 and len(big.payload) == 64 * 1024 + 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096), st.booleans())
def test_fuzz_arbitrary_bytes_from_the_engine(garbage, mid_frame):
    """Whatever bytes the engine writes (after its first report, or at once), qcload ends within
    its time limit with a replay, never a crash or an unbounded frame."""

    def hostile(sock: socket.socket) -> None:
        if mid_frame:
            read_frame(sock)
            sock.sendall(server_frame(orjson.dumps({"order_id": "T-0"}))[:-2])
        sock.sendall(garbage)
        time.sleep(0.3)

    _, result, took = replay_against(hostile, n=3, report_timeout_s=0.2, time_limit_s=1.0)
    assert took < 3
    assert all(len(f.payload) <= 64 * 1024 + 1 for f in result.frames)
    assert len(result.failures) == 1
