"""Upload limits and the judging queue's order: pure rules, fed counts read from the instance.

The judge has one slot per disjoint CPU set and a judging takes tens of seconds, so one contestant
uploading in a loop would otherwise delay everyone else's verdicts by their whole backlog. Two
limits bound what one contestant may put in the queue (a rate over a sliding window, and a cap
on judgings not yet finished), and the queue itself serves every contestant's first pending
judging before anyone's second (``queue_priority``). The leaderboard's upload API and the
submission sensor apply the same ``check``, so an upload that reaches the bucket by another road
meets the same limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# A pending judging has no finish time to promise; about two standard judgings.
PENDING_RETRY_S = 60


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Per contestant; 0 switches a limit off. Set per contest (``settings.upload_limits``)."""

    per_window: int = 3  # uploads accepted for judging within any window
    window_s: float = 600.0
    max_pending: int = 3  # judgings queued or running at once

    @property
    def enabled(self) -> bool:
        return self.per_window > 0 or self.max_pending > 0

    def fingerprint(self) -> str:
        """Changes whenever the organiser changes a limit: held uploads are then looked at again."""
        return f"{self.per_window}/{self.window_s:g}/{self.max_pending}"

    def describe(self) -> str:
        parts = []
        if self.per_window:
            parts.append(f"{self.per_window} uploads per {_duration(self.window_s)}")
        if self.max_pending:
            parts.append(f"{self.max_pending} judgings waiting or running")
        return " and ".join(parts) or "no limit"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upload is not judged now, and after how many seconds another one would be."""

    reason: str
    retry_after_s: int


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


def check(limits: UploadLimits, at: float, accepted: Iterable[float], pending: int) -> Refusal | None:
    """Whether an upload made at ``at`` may be judged.

    ``accepted``: upload times of the contestant's uploads already accepted for judging (only those
    in the window ending at ``at`` count, so a late look at an old upload judges it by its own
    time); ``pending``: their judgings queued or running now.
    """
    if limits.max_pending and pending >= limits.max_pending:
        return Refusal(
            f"{pending} of your uploads are still waiting for or in judging (the limit is "
            f"{limits.max_pending}); upload again once one has finished",
            PENDING_RETRY_S,
        )
    if limits.per_window:
        recent = sorted(t for t in accepted if at - limits.window_s < t <= at)
        if len(recent) >= limits.per_window:
            # The window frees a place when the oldest upload that fills it leaves it.
            frees_at = recent[-limits.per_window] + limits.window_s
            return Refusal(
                f"over the upload limit of {limits.per_window} uploads per {_duration(limits.window_s)}",
                max(1, math.ceil(frees_at - at)),
            )
    return None


def queue_priority(pending_before: int) -> int:
    """Run priority (higher runs first) of a contestant's upload with ``pending_before`` of their
    judgings already pending: their k-th waits behind every other contestant's first to (k-1)-th.
    Equal priorities keep upload order."""
    return -pending_before
