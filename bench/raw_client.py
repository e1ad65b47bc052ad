"""Minimal uvloop + picows sequential loop: the baseline the judge's phase A is compared with.

Usage: python bench/raw_client.py PORT TRACE.jsonl RESULT.json — sends each line, waits for one
frame back, records the round trip; no parsing, no bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from time import perf_counter_ns

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class Loop(WSListener):
    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.i = 0
        self.t = 0
        self.rtts: list[int] = []
        self.done = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def send_next(self) -> None:
        self.t = perf_counter_ns()
        self.transport.send(WSMsgType.TEXT, self.payloads[self.i])

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.rtts.append(perf_counter_ns() - self.t)
        self.i += 1
        if self.i < len(self.payloads):
            self.send_next()
        elif not self.done.done():
            self.done.set_result(None)


async def run(port: int, payloads: list[bytes]) -> list[int]:
    for _ in range(300):  # wait for /health by trying the socket
        try:
            _, client = await ws_connect(lambda: Loop(payloads), f"ws://127.0.0.1:{port}/ws/orders")
            break
        except OSError:
            await asyncio.sleep(0.1)
    client.send_next()
    await client.done
    return client.rtts


def main() -> None:
    port, trace_path, out_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(trace_path, "rb") as fh:
        payloads = [line.rstrip(b"\n") for line in fh if line.strip()]
    if len(sys.argv) > 4:
        import os

        os.sched_setaffinity(0, [int(c) for c in sys.argv[4].split(",")])
    start = time.monotonic()
    rtts = uvloop.run(run(port, payloads))
    with open(out_path, "w") as fh:
        json.dump({"rtt_ns": rtts, "wall_s": time.monotonic() - start}, fh)


if __name__ == "__main__":
    main()
