"""Projection mode: the class on a lecture-hall screen without exposing anyone.

Names become pseudonyms (stable for the life of the app process, so a refresh keeps them,
and not derivable from the user id without the process's secret), code and check messages
are left out (a message may quote a student's own phrase), and counts from 1 to 4 are
hidden, since a small count on a big screen points at a person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

__all__ = ["HIDDEN_BELOW", "hide_small", "pseudonym"]

HIDDEN_BELOW = 5

_ADJECTIVES = (
    "Amber", "Brisk", "Calm", "Dapper", "Eager", "Fuzzy", "Gentle", "Hardy", "Idle", "Jolly",
    "Keen", "Lucky", "Merry", "Nimble", "Odd", "Plucky", "Quiet", "Rapid", "Sunny", "Tidy",
)  # fmt: skip
_ANIMALS = (
    "Otter", "Heron", "Badger", "Falcon", "Gecko", "Ibis", "Koala", "Lynx", "Marten", "Newt",
    "Orca", "Panda", "Quail", "Raven", "Seal", "Tapir", "Vole", "Walrus", "Yak", "Zebra",
)  # fmt: skip

_secret: bytes | None = None
_secret_lock = threading.Lock()


def _key() -> bytes:
    global _secret
    with _secret_lock:
        if _secret is None:  # made on first use, never at import
            _secret = secrets.token_bytes(16)
        return _secret


def pseudonym(user_id: int) -> str:
    """A stable made-up name for a student ("Calm Otter 17"), the same within this process."""
    digest = hmac.new(_key(), str(int(user_id)).encode(), hashlib.sha256).digest()
    adjective = _ADJECTIVES[digest[0] % len(_ADJECTIVES)]
    animal = _ANIMALS[digest[1] % len(_ANIMALS)]
    return f"{adjective} {animal} {int.from_bytes(digest[2:4], 'big') % 100:02d}"


def hide_small(count: int | None, projection: bool) -> int | None:
    """``count``, or ``None`` (shown as "fewer than 5") in projection mode when 1-4."""
    if projection and count is not None and 0 < count < HIDDEN_BELOW:
        return None
    return count
