"""The kernel's CPU list format (``0-3,6``), as /sys, cpusets and the judge's settings write it:
parsed here, pure, so settings and the judge's CPU placement read it the same way."""

from __future__ import annotations


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,6"`` → ``[0, 1, 2, 3, 6]``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus
