"""Contestant accounts: a name and an upload token, stored hashed in the bucket."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import orjson

from quantcraft_dagster.core import keys
from quantcraft_dagster.core.intake import CONTESTANT_RE
from quantcraft_dagster.storage.bucket import Bucket


def _digest(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is as strong as a slow password hash here.
    return hashlib.sha256(token.encode()).hexdigest()


def add(bucket: Bucket, name: str) -> str:
    """Create (or re-key) a contestant and return the token, shown once."""
    if not CONTESTANT_RE.match(name):
        raise ValueError("contestant name must be 1-64 of A-Z a-z 0-9 _ - (starting alphanumeric)")
    token = f"{name}.{secrets.token_urlsafe(32)}"
    bucket.put_bytes(keys.contestant(name), orjson.dumps({"name": name, "token_sha256": _digest(token)}))
    return token


def authenticate(bucket: Bucket, token: str | None) -> str | None:
    """The contestant a token belongs to, or None."""
    if not token or "." not in token:
        return None
    name = token.split(".", 1)[0]
    if not CONTESTANT_RE.match(name):
        return None
    try:
        record = orjson.loads(bucket.get_bytes(keys.contestant(name)))
    except (OSError, ValueError, KeyError):
        return None
    except Exception:  # botocore's NoSuchKey and friends
        return None
    return name if hmac.compare_digest(record["token_sha256"], _digest(token)) else None
