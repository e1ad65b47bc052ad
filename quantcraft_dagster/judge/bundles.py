"""Trace bundles for the judge: the public ones built and kept in the judge host's disk cache, the
official ones assembled from the trace assets' values. Assembling is pure (``core.bundle``);
this module is its on-disk cache, an adapter beside the judge.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from .. import settings
from ..core import book, protocol, trace
from ..core.bundle import PhaseBundle, assemble, build


def cache_dir() -> Path:
    return settings.current().cache


def _bundle_key(spec: trace.PhaseSpec) -> str:
    """Changes whenever the spec or any rule that shapes traces or answers changes."""
    digest = hashlib.sha256(repr(spec).encode())
    for module in (trace, book, protocol):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:20]


def _cached(name: str, build: Callable[[], PhaseBundle]) -> PhaseBundle:
    """A bundle from the judge host's disk cache (root-only), or built and stored there."""
    path = cache_dir() / "bundles" / f"{name}.pkl"
    with (
        contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError),
        open(path, "rb") as fh,
    ):
        return pickle.load(fh)
    result = build()
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return result


@functools.lru_cache(maxsize=6)
def phase_bundle(profile: str, phase: str) -> PhaseBundle:
    """A public phase, built as the trace assets build theirs; cached by the code that makes it."""
    spec = trace.get_spec(profile, phase)
    return _cached(f"{profile}-{phase}-{_bundle_key(spec)}", lambda: build(spec, "public"))


def public_bundles(profile: str) -> dict[str, PhaseBundle]:
    """Every phase of a public profile: what a contestant self-judges with."""
    return {phase: phase_bundle(profile, phase) for phase in trace.PHASES}


def official_bundle(spec: trace.PhaseSpec, orders: list[bytes], answers: list[bytes]) -> PhaseBundle:
    """A phase from the official trace and expected-reports assets' values. Never cached on disk:
    every judging has its own trace, so a cache would only grow and never hit (assembling is
    about 1.5 s of a standard judging: docs/official-traces.md)."""
    if len(orders) != spec.orders:
        raise ValueError(
            f"the stored phase {spec.phase} trace has {len(orders):,} orders, the profile {spec.orders:,}:"
            " re-materialise the trace assets for this profile"
        )
    return assemble(spec, orders, answers, "official")
