"""The verdict: one terminal status, a reason a contestant can act on, and the figures.

``finished``: every phase ran to the end (wrong reports only cost correctness); ``failed``: the
engine crashed, hung, closed a connection or never became healthy (partial results kept);
``rejected``: the upload was not a startable binary (nothing ran).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .check import Divergence, PhaseCheck
from .metrics import PhaseMetrics
from .scoring import Scores, ScoringConfig, score_phases

FINISHED, FAILED, REJECTED = "finished", "failed", "rejected"
TERMINAL = (FINISHED, FAILED, REJECTED)


@dataclass(slots=True)
class PhaseOutcome:
    """What one phase measured and, if it went wrong, why."""

    phase: str
    metrics: PhaseMetrics
    check: PhaseCheck
    problem: str | None = None
    engine_exit: str = ""
    protocol_errors: list[str] = field(default_factory=list)
    protocol_error_count: int = 0


@dataclass(slots=True)
class Verdict:
    status: str
    reason: str
    profile: str = ""
    scores: Scores | None = None
    phases: dict[str, PhaseMetrics] = field(default_factory=dict)
    book_match: bool | None = None
    book_problems: list[str] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    fill_match_ratio: float | None = None
    protocol_errors: list[str] = field(default_factory=list)
    engine_cpus: int | None = None
    binary: dict[str, Any] | None = None
    stderr_tail: str = ""

    def to_obj(self, stderr: bool = True) -> dict[str, Any]:
        """The verdict as JSON (``quantcraft judge --json`` and the assets' metadata)."""
        obj: dict[str, Any] = {
            "status": self.status,
            "reason": self.reason,
            "profile": self.profile,
            "scores": self.scores.to_obj() if self.scores else None,
            "phases": {
                name: {k: v for k, v in m.to_obj().items() if k != "windows"}
                for name, m in self.phases.items()
            },
            "book_match": self.book_match,
            "book_problems": self.book_problems,
            "fill_match_ratio": self.fill_match_ratio,
            "divergences": [d.to_obj() for d in self.divergences],
            "protocol_errors": self.protocol_errors,
            "engine_cpus": self.engine_cpus,
            "binary": self.binary,
        }
        if stderr:
            obj["stderr_tail"] = self.stderr_tail
        return obj


def rejected(reason: str) -> Verdict:
    return Verdict(REJECTED, reason)


def decide(
    profile: str,
    outcomes: list[PhaseOutcome],
    book_problems: list[str] | None,
    cfg: ScoringConfig | None = None,
) -> Verdict:
    """Status, reason and scores from the phases; p99 from phase C, orders/s from phase B."""
    orders = sum(o.check.orders for o in outcomes)
    exact = sum(o.check.exact_count for o in outcomes)
    scores = score_phases({o.phase: o.metrics for o in outcomes}, exact, orders, cfg)
    fills_expected = sum(o.check.fills_expected for o in outcomes)
    fills_matched = sum(o.check.fills_matched for o in outcomes)
    problems = [f"phase {o.phase}: {o.problem}" for o in outcomes if o.problem]
    divergences = [d for o in outcomes for d in o.check.divergences]
    if problems:
        status, reason = FAILED, "; ".join(problems)
    else:
        status = FINISHED
        reason = f"{exact} of {orders} reports exact"
        if divergences:
            d = divergences[0]
            reason += f"; first divergence: phase {d.phase} order {d.order_id}: {d.reason}"
        if book_problems:
            reason += f"; final book differs ({book_problems[0]})"
        stray = sum(o.protocol_error_count for o in outcomes)
        if stray:
            first = next(e for o in outcomes for e in o.protocol_errors)
            reason += f"; {stray} protocol errors (first: {first})"
    return Verdict(
        status=status,
        reason=reason,
        profile=profile,
        scores=scores,
        phases={o.phase: o.metrics for o in outcomes},
        book_match=None if book_problems is None else not book_problems,
        book_problems=book_problems or [],
        divergences=divergences[:10],
        fill_match_ratio=fills_matched / fills_expected if fills_expected else None,
        protocol_errors=[f"phase {o.phase}: {e}" for o in outcomes for e in o.protocol_errors][:20],
    )
