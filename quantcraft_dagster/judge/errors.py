"""The judge's own failures, apart from an engine's: every layer may import this module.

An engine's crash, hang or wrong report is a verdict (``core.verdict``). A failure of the judge
itself (its host too busy to vouch for a trial, Docker unreachable, a sandbox left behind) is an
:class:`InfrastructureError`: never a verdict, safe to retry, and after the retries a judging that
waits for a quiet judge (``lifecycle.WAITING``). Modelled on DMOJ's ``error.py``.
"""


class InfrastructureError(RuntimeError):
    """The judge itself failed (not the engine): safe to retry the judging."""


# The one retry policy for judge failures: the judging asset (as step retries) and the finals
# (in place) retry a judging this often, after these waits; then it waits for a quiet judge.
INFRASTRUCTURE_RETRIES = 2
"""Times a judging that ended in :class:`InfrastructureError` is run again, later."""


def infrastructure_retry_wait_s(retry_number: int) -> int:
    """Seconds to wait before retry ``retry_number`` (0-based) of a judging the host spoiled. A
    host's bursts (a container's copy-on-start, a backup) last seconds to a minute: each wait is
    four times longer than the last (5, 20 s) to get past one."""
    return 5 * 4**retry_number
