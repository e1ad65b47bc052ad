"""The upload limits' rule and the queue's priority, without any I/O."""

from __future__ import annotations

from quantcraft_dagster.core.limits import PENDING_RETRY_S, UploadLimits, check, queue_priority

LIMITS = UploadLimits(per_window=3, window_s=600, max_pending=0)


def test_the_window_counts_only_uploads_inside_it_and_says_when_a_place_frees():
    assert check(LIMITS, 1000.0, [300.0, 900.0, 950.0], pending=0) is None  # 300 is out of the window
    refusal = check(LIMITS, 1000.0, [450.0, 900.0, 950.0, 990.0], pending=0)
    assert refusal is not None and "3 uploads per 10 minutes" in refusal.reason
    assert refusal.retry_after_s == 500  # 900 + 600 - 1000: the oldest upload that fills the window
    assert check(LIMITS, 1500.0, [900.0, 950.0, 990.0], pending=0) is None  # 900 has left by then


def test_uploads_after_the_one_judged_do_not_count_against_it():
    """A late look at an old upload (sensor down, multipart upload) judges it by its own time."""
    assert check(LIMITS, 1000.0, [900.0, 1100.0, 1200.0, 1300.0], pending=0) is None


def test_pending_cap_and_switching_limits_off():
    capped = UploadLimits(per_window=0, max_pending=2)
    assert check(capped, 0.0, [], pending=1) is None
    refusal = check(capped, 0.0, [], pending=2)
    assert refusal is not None and "waiting" in refusal.reason and refusal.retry_after_s == PENDING_RETRY_S
    off = UploadLimits(per_window=0, max_pending=0)
    assert not off.enabled and check(off, 0.0, [0.0] * 100, pending=100) is None
    assert off.fingerprint() != UploadLimits().fingerprint()


def test_a_contestants_kth_pending_upload_ranks_behind_everyones_first():
    priorities = [queue_priority(pending) for pending in range(4)]
    assert priorities == sorted(priorities, reverse=True) and len(set(priorities)) == 4
    assert queue_priority(0) > queue_priority(1)
