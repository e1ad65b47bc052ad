"""Follows the Dagster instance by cursor and fans changes out to every connected browser.

The instance is the only source of truth: score materializations, lifecycle observations and
per-phase metrics are read in storage order from a cursor, so a restarted app rebuilds exactly
the same state by reading from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import orjson

from quantcraft_dagster import lifecycle
from quantcraft_dagster.core.standings import rank

METRICS_ASSET = dg.AssetKey("metrics")
RECENT = 50


def _meta(event) -> dict[str, Any]:
    return {k: v.value for k, v in (event.metadata or {}).items()}


@dataclass
class Board:
    """Everything the pages show, rebuilt from the instance."""

    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ranked: list[dict[str, Any]] | None = None

    def changed(self) -> None:
        self._ranked = None

    def leaderboard(self) -> list[dict[str, Any]]:
        """Ranked once per change, then shared by every request and every new browser."""
        if self._ranked is None:
            self._ranked = self._rank()
        return self._ranked

    def _rank(self) -> list[dict[str, Any]]:
        return [
            {
                "rank": s.rank,
                "contestant": s.contestant,
                "submissions": s.submissions,
                "last_update": s.last_update,
                **{k: s.best.get(k) for k in ("final", "latency", "throughput", "correctness", "p99_us",
                                               "orders_per_s", "partition")},
            }
            for s in rank(self.scores.values())
        ]  # fmt: skip

    def recent(self) -> list[dict[str, Any]]:
        rows = sorted(self.stages.values(), key=lambda r: r.get("updated", 0), reverse=True)
        return rows[:RECENT]

    def submission(self, partition: str) -> dict[str, Any] | None:
        if partition not in self.stages and partition not in self.scores:
            return None
        return {
            "partition": partition,
            "status": self.stages.get(partition, {}),
            "score": self.scores.get(partition),
            "metrics": self.metrics.get(partition),
        }


class Tail:
    """Cursors over the three event streams; ``poll`` returns the browser messages for new events."""

    def __init__(self, instance: dg.DagsterInstance, board: Board) -> None:
        self.instance = instance
        self.board = board
        self.cursors: dict[str, str | None] = {"obs": None, "score": None, "metrics": None}

    def _fetch(self, name: str, fetch: Callable, key: dg.AssetKey) -> list:
        records = []
        while True:
            result = fetch(
                dg.AssetRecordsFilter(asset_key=key), limit=500, cursor=self.cursors[name], ascending=True
            )
            records += result.records
            if result.records:
                self.cursors[name] = result.cursor
            if not result.has_more:
                return records

    def poll(self) -> list[dict[str, Any]]:
        board, messages = self.board, []
        for r in self._fetch("obs", self.instance.fetch_observations, lifecycle.LIFECYCLE_ASSET):
            meta = _meta(r.asset_observation)
            row = board.stages.setdefault(r.partition_key, {"partition": r.partition_key})
            row.update(meta, updated=r.timestamp)
            row.setdefault("contestant", r.partition_key.rsplit("-", 2)[0])
            messages.append({"type": "status_update", "submission": dict(row)})
        for r in self._fetch("metrics", self.instance.fetch_materializations, METRICS_ASSET):
            board.metrics[r.partition_key] = _meta(r.asset_materialization)
            messages.append({"type": "metric_update", "partition": r.partition_key,
                             "metrics": board.metrics[r.partition_key]})  # fmt: skip
        scored = []
        for r in self._fetch("score", self.instance.fetch_materializations, lifecycle.SCORE_ASSET):
            record = _meta(r.asset_materialization)
            board.scores[r.partition_key] = record
            row = board.stages.setdefault(r.partition_key, {"partition": r.partition_key})
            row.update(stage=record.get("status"), contestant=record.get("contestant"), updated=r.timestamp,
                       final=record.get("final"), reason=record.get("reason"))  # fmt: skip
            scored.append(record)
        if scored:
            board.changed()
            standing = {row["contestant"]: row for row in board.leaderboard()}
            # Each score carries its contestant's standing: browsers move one row, never reload 2,000.
            messages += [
                {"type": "final_score", "score": rec, "standing": standing.get(rec.get("contestant"))}
                for rec in scored
            ]
        return messages


class Hub:
    """Browser connections; each gets its own bounded queue so a slow one never blocks others."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue] = set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.queues.add(queue)
        return queue

    # Messages are serialised once and the same text goes to every browser.

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.discard(queue)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        texts = [orjson.dumps(m).decode() for m in messages]
        for queue in list(self.queues):
            for text in texts:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(text)


class Follower:
    """Runs ``Tail.poll`` on a thread every ``interval`` s and publishes on the event loop."""

    def __init__(self, tail: Tail, hub: Hub, interval: float = 0.2) -> None:
        self.tail, self.hub, self.interval = tail, hub, interval
        self.lock = threading.Lock()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            messages = await asyncio.to_thread(self.poll)
            if messages:
                self.hub.publish(messages)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def poll(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.tail.poll()

    def stop(self) -> None:
        self._stop.set()
