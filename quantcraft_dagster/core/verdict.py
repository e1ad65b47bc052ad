"""The verdict: one terminal status, a reason a contestant can act on, and the figures.

``finished``: every phase ran to the end (wrong reports only cost correctness); ``failed``: the
engine crashed, hung, closed a connection or never became healthy (partial results kept);
``rejected``: the upload was not a startable binary (nothing ran).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .check import Divergence, PhaseCheck
from .metrics import PhaseMetrics
from .scoring import SEED, Scores, ScoringConfig, TrialSet, score_sets, trial_sets
from .trial import summarize

FINISHED, FAILED, REJECTED = "finished", "failed", "rejected"
TERMINAL = (FINISHED, FAILED, REJECTED)


def fully_correct(exact: int, orders: int) -> bool:
    """Every report exact: under ``correct_first`` such an engine ranks above every engine with a
    wrong report (the asset check, the score and the finals all ask this)."""
    return orders > 0 and exact == orders


@dataclass(slots=True)
class PhaseOutcome:
    """What one run of a phase (phase A, or one trial of B or C) measured and why it failed.

    ``problem`` is public: it names no order, fill or book (those are the owner's diagnostics).
    """

    phase: str
    metrics: PhaseMetrics
    check: PhaseCheck
    problem: str | None = None
    engine_exit: str = ""
    protocol_errors: list[str] = field(default_factory=list)
    protocol_error_count: int = 0
    trial: int = 0
    # Per order: left out of the latency percentiles (``core.trial.disturbed_orders``), or None.
    disturbed: np.ndarray | None = None


@dataclass(slots=True)
class Verdict:
    """One judging's outcome. ``reason`` is public; the owner alone sees divergences, book
    problems, protocol errors and the stderr tail (``to_obj(private=True)``)."""

    status: str
    reason: str
    profile: str = ""
    traces: str = ""  # "public" (published seeds) or "official" (organiser-held seeds)
    scores: Scores | None = None
    scoring: str = ""  # the scale's name (``core.scoring.PRESETS``)
    # What the scores derive from: any scale scores them again without judging again.
    trial_sets: list[TrialSet] = field(default_factory=list)
    scores_range: dict[str, list[float]] = field(default_factory=dict)
    phases: dict[str, PhaseMetrics] = field(default_factory=dict)
    trials: dict[str, list[PhaseMetrics]] = field(default_factory=dict)
    invalid_trials: dict[str, list[str]] = field(default_factory=dict)
    book_match: bool | None = None
    book_problems: list[str] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    fill_match_ratio: float | None = None
    protocol_errors: list[str] = field(default_factory=list)
    engine_cpus: int | None = None
    binary: dict[str, Any] | None = None
    stderr_tail: str = ""
    trace_versions: dict[str, str] = field(default_factory=dict)
    # Names the traces judged on (``core.bundle.trace_id``): every official judging has its own.
    trace_id: str = ""
    calibration: dict[str, Any] | None = None
    # Set when the engine's own kernel work kept it off its CPUs and a control trial of the
    # reference engine ran clean (its interference share): those trials counted.
    control_interference: float | None = None

    def to_obj(self, private: bool = True) -> dict[str, Any]:
        """The verdict as JSON (``quantcraft judge --json`` and the judging asset)."""
        obj: dict[str, Any] = {
            "status": self.status,
            "reason": self.reason,
            "profile": self.profile,
            "traces": self.traces,
            "scores": self.scores.to_obj() if self.scores else None,
            "scoring": self.scoring,
            "trial_sets": [t.to_obj() for t in self.trial_sets],
            "scores_range": self.scores_range,
            "phases": {name: self._phase_obj(name, m) for name, m in self.phases.items()},
            "book_match": self.book_match,
            "fill_match_ratio": self.fill_match_ratio,
            "engine_cpus": self.engine_cpus,
            "binary": self.binary,
            "trace_versions": self.trace_versions,
            "trace_id": self.trace_id,
            "calibration": self.calibration,
            "control_interference": self.control_interference,
        }
        if private:
            obj.update(
                book_problems=self.book_problems,
                divergences=[d.to_obj() for d in self.divergences],
                protocol_errors=self.protocol_errors,
                stderr_tail=self.stderr_tail,
            )
        return obj

    def _phase_obj(self, name: str, m: PhaseMetrics) -> dict[str, Any]:
        invalid = self.invalid_trials.get(name, [])
        return {
            **_figures(m),
            "trials": [_figures(t) for t in self.trials.get(name, [m])],
            "invalid_trials": {"count": len(invalid), "reasons": invalid},
        }


def _figures(m: PhaseMetrics) -> dict[str, Any]:
    return {k: v for k, v in m.to_obj().items() if k != "windows"}


def rejected(reason: str) -> Verdict:
    return Verdict(REJECTED, reason)


def decide(
    profile: str,
    outcomes: list[PhaseOutcome],
    book_problems: list[str] | None,
    cfg: ScoringConfig | None = None,
    invalid_trials: dict[str, list[str]] | None = None,
) -> Verdict:
    """Status, public reason and scores from every counted run: phase A once, the valid trials of
    B and C, scored over trial sets (``core.scoring.score_sets``)."""
    trials: dict[str, list[PhaseMetrics]] = {}
    for o in outcomes:
        trials.setdefault(o.phase, []).append(o.metrics)
    cfg = cfg or SEED
    sets = trial_sets(trials)
    scored = score_sets(sets, cfg)
    orders = sum(o.check.orders for o in outcomes)
    exact = sum(o.check.exact_count for o in outcomes)
    fills_expected = sum(o.check.fills_expected for o in outcomes)
    fills_matched = sum(o.check.fills_matched for o in outcomes)
    problems: dict[str, str] = {}
    for o in outcomes:
        if o.problem:
            problems.setdefault(o.phase, f"phase {o.phase}: {o.problem}")
    if problems:
        status, reason = FAILED, "; ".join(problems.values())
    else:
        status = FINISHED
        wrong = orders - exact
        reason = f"{wrong:,} of {orders:,} reports differ" if wrong else f"all {orders:,} reports exact"
        if book_problems:
            reason += "; the final book differs"
        stray = sum(o.protocol_error_count for o in outcomes)
        if stray:
            reason += f"; {stray:,} protocol errors"
    # Only after the engine failed does the judge leave a phase without a trial it vouches for.
    unscored = [p for p, reasons in (invalid_trials or {}).items() if reasons and p not in trials]
    for phase in unscored:
        reason += f"; phase {phase} not scored (the judge could not vouch for its trials)"
    return Verdict(
        status=status,
        reason=reason,
        profile=profile,
        scores=scored.scores,
        scoring=cfg.name,
        trial_sets=sets,
        scores_range=scored.ranges_obj(),
        phases={phase: summarize(runs) for phase, runs in trials.items()},
        trials=trials,
        invalid_trials={p: list(r) for p, r in (invalid_trials or {}).items() if r},
        book_match=None if book_problems is None else not book_problems,
        book_problems=book_problems or [],
        divergences=[d for o in outcomes for d in o.check.divergences][:10],
        fill_match_ratio=fills_matched / fills_expected if fills_expected else None,
        protocol_errors=[f"phase {o.phase}: {e}" for o in outcomes for e in o.protocol_errors][:20],
    )
