"""Schema migrations and connection settings."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from db_fixtures import PASSWORD
from sqlite_utils import Database

from db import DbError, Store
from db.migrations import MIGRATION_SET, migrations
from db.passwords import hash_password

FIRST = "m001_initial"
LATER = (
    "m002_project_logins_snippets",
    "m003_sign_in_sessions",
    "m004_sign_in_throttle",
    "m005_lti",
    "m006_lti_services",
    "m007_check_causes",
)


def test_database_created_by_first_migration_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before=LATER[0])
    assert "project_revisions" not in old.table_names()
    old.execute(
        "INSERT INTO users (email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        [
            "old@example.org",
            "Old Student",
            "student",
            hash_password(PASSWORD),
            "2026-01-01T00:00:00.000000+00:00",
        ],
    )
    old.execute(
        "INSERT INTO answer_revisions (user_id, question_id, text, created_at)"
        " VALUES (1, 'q1', 'written before the upgrade', '2026-01-01T00:00:01.000000+00:00')"
    )
    old.close()

    store = Store(path)
    applied = [m.name for m in migrations.applied(store._db())]
    assert applied == [FIRST, *LATER]
    user = store.authenticate("old@example.org", PASSWORD)
    assert store.answer(user.id, "q1").text == "written before the upgrade"
    project = store.log_project(user.id, description="new table works")
    assert project.description == "new table works"
    store.close()


def test_reopening_applies_nothing_twice(tmp_path):
    Store(tmp_path / "w.db").close()
    store = Store(tmp_path / "w.db")
    rows = list(
        store._db().query(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET]
        )
    )
    assert [r["name"] for r in rows] == [FIRST, *LATER]
    store.close()


def test_connection_uses_wal_foreign_keys_and_busy_timeout(store):
    conn = store._db().conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_foreign_keys_are_enforced(store):
    with pytest.raises(sqlite3.IntegrityError):
        store._db().execute(
            "INSERT INTO answer_revisions (user_id, question_id, text, created_at)"
            " VALUES (999, 'q1', 'x', 'now')"
        )


def test_each_thread_gets_its_own_connection(store):
    seen: list[sqlite3.Connection] = []
    all_connected = threading.Barrier(4)

    def grab() -> None:
        seen.append(store._db().conn)
        all_connected.wait(10)  # keep every thread alive until all have connected

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4
    assert store._db().conn not in seen
    assert store._db() is store._db()


def test_in_memory_store_is_shared_between_threads(fresh_db):
    user = fresh_db.create_user("mem@example.org", "Mem", PASSWORD)
    found: list[str] = []
    thread = threading.Thread(target=lambda: found.append(fresh_db.user(user.id).email))
    thread.start()
    thread.join()
    assert found == ["mem@example.org"]


def test_two_in_memory_stores_are_separate():
    a, b = Store(":memory:"), Store(":memory:")
    a.create_user("a@example.org", "A", PASSWORD)
    assert b.list_users() == []
    a.close()
    b.close()


def test_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not sqlite, just some text " * 100)
    with pytest.raises(DbError, match="not a usable SQLite database"):
        Store(bad)


def test_closed_store_refuses_use(tmp_path):
    store = Store(tmp_path / "w.db")
    store.close()
    with pytest.raises(DbError, match="closed"):
        store.list_users()


def test_connections_of_finished_threads_are_closed(store):
    # Streamlit runs every rerun on a new thread; connections must not pile up.
    for _ in range(30):
        thread = threading.Thread(target=store.list_users)
        thread.start()
        thread.join()
    store.list_users()
    assert store.open_connections() <= 2


def test_in_memory_store_outlives_the_thread_that_opened_it():
    opened: list[Store] = []

    def open_and_write() -> None:
        s = Store(":memory:")
        s.create_user("t@example.org", "T", PASSWORD)
        opened.append(s)

    thread = threading.Thread(target=open_and_write)
    thread.start()
    thread.join()
    store = opened[0]
    assert [u.email for u in store.list_users()] == ["t@example.org"]
    store.close()
