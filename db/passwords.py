"""Slow, salted password hashes: Argon2id for new ones, scrypt ones still verify.

Every stored hash describes itself (scheme, cost and salt), so the cost can be raised later
without breaking the hashes made before: the verifier always reads the parameters from the
stored string, and a successful sign-in re-hashes anything weaker than today's setting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's Password Storage Cheat Sheet: Argon2id with at least m=19 MiB, t=2, p=1 (its first
# of several equivalent settings). We pick that one because sign-ins run on the same few
# cores as every student's kernel; m is in KiB.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)

# An scrypt hash asks for 128 * r * (N + p + 2) bytes; a stored row asking for more than this
# is refused instead of letting a tampered database exhaust the server's memory.
_SCRYPT_MAX_BYTES = 2**30


def hash_password(password: str) -> str:
    """Return an Argon2id hash of ``password`` in the PHC string format (``$argon2id$...``)."""
    return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (Argon2 or legacy scrypt), whatever its cost."""
    if stored.startswith("$argon2"):
        try:
            # verify() takes type, memory, time and parallelism from the stored string.
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` is weaker than today's setting and should be replaced.

    scrypt hashes always are; Argon2 hashes are when they are not Argon2id or when their
    memory or time cost is below ours. A hash made at a *higher* cost is kept (argon2's own
    ``check_needs_rehash`` would also flag it, only because it differs).
    """
    if not stored.startswith("$argon2"):
        return True
    if not _HASHER.check_needs_rehash(stored):
        return False
    try:
        params = extract_parameters(stored)
    except InvalidHashError:
        return True
    return (
        params.type is not Type.ID
        or params.memory_cost < ARGON2_MEMORY_KIB
        or params.time_cost < ARGON2_TIME_COST
    )


def _verify_scrypt(password: str, stored: str) -> bool:
    """Check a legacy ``scrypt$N$r$p$salt$hash`` string (base64 salt and hash)."""
    try:
        _scheme, n_text, r_text, p_text, salt, digest = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        # What OpenSSL's scrypt allocates for these parameters, plus room for its own
        # bookkeeping: a fixed maxmem made every hash above N=2**14 unverifiable.
        needed = 128 * r * (n + p + 2)
        if needed > _SCRYPT_MAX_BYTES:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=n,
            r=r,
            p=p,
            dklen=len(expected),
            maxmem=needed + 2**20,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# A real hash to verify against when the email is unknown, so a wrong email costs as
# much time as a wrong password and timing does not reveal which accounts exist.
_DUMMY_HASH: str | None = None


def burn_time(password: str) -> None:
    """Spend the time of one verification without a real account."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not-a-real-password")
    verify_password(password, _DUMMY_HASH)
