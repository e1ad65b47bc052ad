"""Client-side WebSocket framing, prepared before a phase so sending costs one write per batch.

Every order frame is masked with its own key from a seeded generator (RFC 6455 5.3), built in one
vectorised pass, so the hot path only slices ready bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def masked_text_frames(payloads: Sequence[bytes], seed: int = 0) -> list[bytes]:
    """Complete client text frames (FIN, opcode 1, masked) for each payload."""
    if not payloads:
        return []
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, size=(len(payloads), 4), dtype=np.uint8)
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
    body = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    offset = np.arange(len(body), dtype=np.int64) - starts
    owner = np.repeat(np.arange(len(payloads)), lengths)
    masked = (body ^ keys[owner, offset % 4]).tobytes()
    frames = []
    pos = 0
    for i, length in enumerate(lengths.tolist()):
        frames.append(_header(length) + keys[i].tobytes() + masked[pos : pos + length])
        pos += length
    return frames


def _header(length: int) -> bytes:
    if length < 126:
        return bytes((0x81, 0x80 | length))
    if length < 1 << 16:
        return bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 0x80 | 127)) + length.to_bytes(8, "big")
