"""Follows the Dagster instance through the lifecycle read model and fans changes out to browsers.

The instance is the only source of truth and ``quantcraft_dagster.lifecycle`` the only reading of
it, so the leaderboard and ``quantcraft status`` never disagree on a stage. Everything here is
public: spectators see a submission's status, public reason and figures — never divergences,
fills, order ids, books, protocol errors or stderr, which stay in the verdict for the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import dagster as dg
import orjson

from quantcraft_dagster.core.standings import rank
from quantcraft_dagster.lifecycle import METRICS, SCORE, STAGE, ReadModel, SubmissionState

RECENT = 50
# Named, not filtered: a field the judge adds to the score record stays private until listed here.
PUBLIC_SCORE = ("partition", "contestant", "status", "reason", "final", "final_range", "latency",
                "throughput", "correctness", "fully_correct", "p99_us", "orders_per_s", "client_limited",
                "cpu_us_per_order", "uploaded_at", "profile", "scoring")  # fmt: skip


def public_score(state: SubmissionState) -> dict[str, Any] | None:
    if state.score is None:
        return None
    return {k: state.score[k] for k in PUBLIC_SCORE if k in state.score}


def public_status(state: SubmissionState) -> dict[str, Any]:
    final = (state.score or state.detail).get("final")
    return {"partition": state.partition, "contestant": state.contestant, "stage": state.stage,
            "reason": state.reason, "final": final, "updated": state.updated}  # fmt: skip


def public_metrics(state: SubmissionState) -> dict[str, Any] | None:
    """The metrics asset's figures (per-phase percentiles and rates): numbers only."""
    if state.metrics is None:
        return None
    return {k: v for k, v in state.metrics.items() if isinstance(v, int | float)}


class Board:
    """What the pages show, kept in step with the read model by ``poll``."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.model = ReadModel(instance)
        self._ranked: list[dict[str, Any]] | None = None

    def leaderboard(self) -> list[dict[str, Any]]:
        """Ranked once per change, then shared by every request and every new browser."""
        if self._ranked is None:
            # Ranked on the whole score records (the policy may read any field); shown public only.
            scores = [s.score for s in list(self.model.states.values()) if s.score]
            self._ranked = [
                {
                    "rank": s.rank,
                    "contestant": s.contestant,
                    "submissions": s.submissions,
                    "last_update": s.last_update,
                    "tied": s.tied,  # shares its rank: the final-score ranges overlap
                    **{k: s.best.get(k) for k in ("final", "final_range", "latency", "throughput",
                                                   "correctness", "p99_us", "orders_per_s", "client_limited",
                                                   "cpu_us_per_order", "partition")},
                }
                for s in rank(scores)
            ]  # fmt: skip
        return self._ranked

    @property
    def scoring(self) -> str:
        """The scoring preset every score on the board is read on."""
        return self.model.scale.name

    def recent(self) -> list[dict[str, Any]]:
        rows = sorted(self.model.states.values(), key=lambda s: s.updated, reverse=True)
        return [public_status(s) for s in rows[:RECENT]]

    def state(self, partition: str) -> SubmissionState | None:
        return self.model.states.get(partition)

    def submission(self, partition: str) -> dict[str, Any] | None:
        state = self.state(partition)
        if state is None:
            return None
        return {"partition": partition, "status": public_status(state), "score": public_score(state),
                "metrics": public_metrics(state)}  # fmt: skip

    def poll(self) -> list[dict[str, Any]]:
        """The browser messages for what the read model saw since the last poll."""
        # One message per submission and kind: the states are already the latest, however many
        # events a poll applied to them.
        changed: dict[str, dict[str, SubmissionState]] = {STAGE: {}, METRICS: {}, SCORE: {}}
        for change, state in self.model.poll():
            changed[change][state.partition] = state
        messages: list[dict[str, Any]] = [
            {"type": "status_update", "submission": public_status(s)} for s in changed[STAGE].values()
        ]
        messages += [
            {"type": "metric_update", "partition": s.partition, "metrics": public_metrics(s)}
            for s in changed[METRICS].values()
        ]
        scored = list(changed[SCORE].values())
        if scored:
            self._ranked = None
            standing = {row["contestant"]: row for row in self.leaderboard()}
            # Each score carries its contestant's standing: browsers move one row, never reload 2,000.
            messages += [
                {"type": "final_score", "score": public_score(s), "standing": standing.get(s.contestant)}
                for s in scored
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

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.discard(queue)

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Messages are serialised once and the same text goes to every browser."""
        texts = [orjson.dumps(m).decode() for m in messages]
        for queue in list(self.queues):
            for text in texts:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(text)


class Follower:
    """Runs ``Board.poll`` on a thread every ``interval`` s and publishes on the event loop."""

    def __init__(self, board: Board, hub: Hub, interval: float = 0.2) -> None:
        self.board, self.hub, self.interval = board, hub, interval
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
            return self.board.poll()

    def stop(self) -> None:
        self._stop.set()
