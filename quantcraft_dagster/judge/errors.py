"""The judge's own failures, apart from an engine's: every layer may import this module.

An engine's crash, hang or wrong report is a verdict (``core.verdict``). A failure of the judge
itself (its host too busy to vouch for a trial, Docker unreachable, a sandbox left behind) is an
:class:`InfrastructureError`: never a verdict, safe to retry, and after the retries a judging that
waits for a quiet judge (``lifecycle.WAITING``). Modelled on DMOJ's ``error.py``.
"""


class InfrastructureError(RuntimeError):
    """The judge itself failed (not the engine): safe to retry the judging."""
