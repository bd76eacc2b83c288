"""Password hashes: Argon2id for new ones, legacy scrypt ones verify and are upgraded.

Hashes the tests start from are made with ``hashlib.scrypt`` and argon2-cffi directly, not
with our own module, so a mistake in how we read or write them cannot hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from db_fixtures import PASSWORD, make_student

from db import AuthenticationError, passwords


def _scrypt_hash(password: str, n: int, r: int = 8, p: int = 1) -> str:
    """A row as the scrypt-era code stored it: ``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * r * (n + p + 2) * 2
    )
    encode = base64.b64encode
    return f"scrypt${n}${r}${p}${encode(salt).decode()}${encode(digest).decode()}"


def _stored_hash(store, user_id: int) -> str:
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute("SELECT password_hash FROM users WHERE id = ?", [user_id]).fetchone()[0]
    finally:
        conn.close()


def _set_stored_hash(store, user_id: int, value: str) -> None:
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", [value, user_id])
    conn.close()


def test_new_hashes_are_argon2id_at_owasp_cost_and_verify_with_the_library():
    stored = passwords.hash_password(PASSWORD)
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19 * 1024, 2, 1)
    # argon2-cffi with its own defaults reads the cost from the string and accepts it.
    assert PasswordHasher().verify(stored, PASSWORD)
    assert not passwords.needs_rehash(stored)


def test_old_scrypt_account_signs_in_and_its_row_is_upgraded_to_argon2id(store):
    user = make_student(store)
    old = _scrypt_hash(PASSWORD, n=2**14)
    _set_stored_hash(store, user.id, old)
    assert store.authenticate(user.email, PASSWORD).id == user.id
    upgraded = _stored_hash(store, user.id)
    assert upgraded != old
    assert extract_parameters(upgraded).type is Type.ID
    assert PasswordHasher().verify(upgraded, PASSWORD)
    # And the upgraded row keeps working.
    assert store.authenticate(user.email, PASSWORD).id == user.id


def test_wrong_password_on_scrypt_account_fails_and_leaves_the_row(store):
    user = make_student(store)
    old = _scrypt_hash(PASSWORD, n=2**14)
    _set_stored_hash(store, user.id, old)
    with pytest.raises(AuthenticationError, match="wrong email or password"):
        store.authenticate(user.email, "not the password at all")
    assert _stored_hash(store, user.id) == old


def test_scrypt_hash_at_owasp_cost_verifies_now_that_maxmem_follows_the_hash():
    # N=2**17, r=8 needs 128 MiB: the old fixed maxmem=2**26 refused it.
    stored = _scrypt_hash(PASSWORD, n=2**17)
    assert passwords.verify_password(PASSWORD, stored)
    assert not passwords.verify_password(PASSWORD + "x", stored)


def test_scrypt_hash_asking_for_absurd_memory_is_refused_not_run():
    salt = base64.b64encode(b"0" * 16).decode()
    assert not passwords.verify_password(PASSWORD, f"scrypt${2**40}$8$1${salt}${salt}")


def test_argon2_hash_at_higher_cost_verifies_and_is_kept(store):
    user = make_student(store)
    stronger = PasswordHasher(time_cost=3, memory_cost=47104, parallelism=2).hash(PASSWORD)
    _set_stored_hash(store, user.id, stronger)
    assert not passwords.needs_rehash(stronger)
    assert store.authenticate(user.email, PASSWORD).id == user.id
    assert _stored_hash(store, user.id) == stronger


@pytest.mark.parametrize(
    "weaker",
    [
        {"time_cost": 1, "memory_cost": 8192, "parallelism": 1, "type": Type.ID},
        {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1, "type": Type.I},
    ],
    ids=["lower-cost", "argon2i"],
)
def test_weaker_argon2_hash_is_rehashed_on_sign_in(store, weaker):
    user = make_student(store)
    old = PasswordHasher(**weaker).hash(PASSWORD)
    _set_stored_hash(store, user.id, old)
    assert passwords.needs_rehash(old)
    store.authenticate(user.email, PASSWORD)
    new = _stored_hash(store, user.id)
    assert new != old
    assert not passwords.needs_rehash(new)


def test_wrong_password_and_garbage_hashes_fail():
    stored = passwords.hash_password(PASSWORD)
    assert passwords.verify_password(PASSWORD, stored)
    assert not passwords.verify_password("wrong password here", stored)
    assert not passwords.verify_password(PASSWORD, "$argon2id$garbage")
    assert not passwords.verify_password(PASSWORD, "md5$abc")
    assert not passwords.verify_password(PASSWORD, "scrypt$x$y")
