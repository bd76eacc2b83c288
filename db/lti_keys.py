"""The tool's RSA signing keys for LTI 1.3, in a file beside the database (mode 0600).

A file and not a table: a database backup or CSV export must never carry the private key,
and the file is outside anything the web server serves. The first use makes a 2048-bit key.
``rotate`` makes a new current key and keeps the old one in the public key set until
``expires_at``, so a platform holding a cached copy of the key set, or a token signed just
before the rotation, still verifies; expired keys are dropped at the next write.

Format (JSON)::

    {"keys": [{"kid": "...", "private_pem": "...", "created_at": "...",
               "expires_at": null | "..."}]}   # the current key is the newest one

Writes go to a private temporary file renamed into place, under a lock file, so the app
and ``python -m db lti rotate-key`` can run at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from db.common import _dt, _now, _ts
from db.errors import DbError

KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    """One of the tool's keys: its id in the key set and its private key in PEM."""

    kid: str
    private_pem: str
    created_at: datetime
    expires_at: datetime | None  # None: the current key

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (``kty``, ``n``, ``e``, ``kid``, ``alg``, ``use``)."""
        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}


def _new_key(now: datetime) -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    # The date makes a key set readable; the random part makes the id unique.
    kid = f"{now:%Y%m%d}-{secrets.token_hex(6)}"
    return {"kid": kid, "private_pem": pem, "created_at": _ts(now), "expires_at": None}


class ToolKeys:
    """The tool's key file: the current signing key and the public key set.

    Args:
        path: the key file; ``None`` keeps the keys in memory (tests of an in-memory store).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def current(self) -> SigningKey:
        """The key to sign with now (made on first use)."""
        keys = self._read()
        if not keys:
            with self._locked():
                keys = self._read()
                if not keys:
                    keys = [_new_key(_now())]
                    self._write(keys)
        return self._key(keys[-1])

    def published(self) -> list[SigningKey]:
        """Every key still published: the current one last."""
        self.current()
        now = _now()
        return [
            self._key(k)
            for k in self._read()
            if k["expires_at"] is None or _dt(k["expires_at"]) > now
        ]

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public key set (``{"keys": [...]}``) to serve at the tool's key set URL."""
        return {"keys": [key.public_jwk() for key in self.published()]}

    def rotate(self, keep_old_for: timedelta = timedelta(hours=24)) -> SigningKey:
        """Make a new current key; the previous one stays published for ``keep_old_for``.

        Returns:
            The new current key.
        """
        self.current()
        with self._locked():
            now = _now()
            keys = [
                k for k in self._read() if k["expires_at"] is None or _dt(k["expires_at"]) > now
            ]
            for key in keys:
                if key["expires_at"] is None:
                    key["expires_at"] = _ts(now + keep_old_for)
            keys.append(_new_key(now))
            self._write(keys)
        return self._key(keys[-1])

    @staticmethod
    def _key(row: dict[str, Any]) -> SigningKey:
        return SigningKey(
            kid=row["kid"],
            private_pem=row["private_pem"],
            created_at=_dt(row["created_at"]),
            expires_at=_dt(row["expires_at"]),
        )

    def _read(self) -> list[dict[str, Any]]:
        if self.path is None:
            return [dict(k) for k in self._memory]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise DbError(f"the LTI key file {self.path} cannot be read: {error}") from error
        return list(data["keys"])

    def _write(self, keys: list[dict[str, Any]]) -> None:
        if self.path is None:
            self._memory = [dict(k) for k in keys]
            return
        partial = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.partial")
        # Created 0600 from the start: the private key is never readable by others, not even
        # for a moment between writing and a chmod.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"keys": keys}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
