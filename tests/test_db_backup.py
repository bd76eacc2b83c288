"""Online backup while the app keeps writing, and CSV export of every table."""

from __future__ import annotations

import csv
import sqlite3
import threading

import pytest
from db_fixtures import PASSWORD, make_student, make_ta

from db import DbError, Store


def test_backup_is_a_readable_copy_while_writes_continue(store, tmp_path):
    student = make_student(store)
    store.save_answer(student.id, "q1", "before the backup")
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def keep_writing() -> None:
        try:
            n = 0
            while not stop.is_set():
                store.save_answer(student.id, "q2", f"during backup {n}")
                n += 1
                written.append(n)
        except (DbError, sqlite3.Error) as error:  # asserted below
            failures.append(error)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        copies = []
        for i in range(3):
            while len(written) < 20 * (i + 1):  # make sure writes really overlap
                threading.Event().wait(0.01)
            copies.append(store.backup(tmp_path / "backups" / f"copy{i}.db"))
    finally:
        stop.set()
        writer.join()
    assert failures == []
    counts = []
    for copy in copies:
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts.append(
            conn.execute(
                "SELECT count(*) FROM answer_revisions WHERE question_id = 'q2'"
            ).fetchone()[0]
        )
        conn.close()
        restored = Store(copy)
        assert restored.answer(student.id, "q1").text == "before the backup"
        assert restored.authenticate(student.email, PASSWORD).id == student.id
        restored.close()
    assert counts == sorted(counts) and counts[0] >= 20
    assert len(store.answer_history(student.id, "q2")) == len(written)
    assert not list((tmp_path / "backups").glob("*.partial")), "no half-written files left"


def test_backup_onto_the_database_itself_is_refused(store):
    with pytest.raises(DbError, match="differ"):
        store.backup(store.path)


def test_export_csv_writes_every_table_without_password_hashes(store, tmp_path):
    student, ta = make_student(store), make_ta(store)
    store.save_answer(student.id, "q1", 'comma, "quote", newline\nand emoji 😀')
    store.log_project(student.id, notebook_name="nb.ipynb", notebook_bytes=b"\x00\x01binary")
    store.save_feedback(student.id, ta.id, grade=4)
    files = store.export_csv(tmp_path / "csv")
    names = {f.stem for f in files}
    assert names == set(store._db().table_names())
    with (tmp_path / "csv" / "users.csv").open(encoding="utf-8", newline="") as handle:
        users = list(csv.DictReader(handle))
    assert "password_hash" not in users[0]
    assert [u["email"] for u in users] == [student.email, ta.email]
    with (tmp_path / "csv" / "answer_revisions.csv").open(encoding="utf-8", newline="") as h:
        answers = list(csv.DictReader(h))
    assert answers[0]["text"] == 'comma, "quote", newline\nand emoji 😀'
    with (tmp_path / "csv" / "uploads.csv").open(encoding="utf-8", newline="") as h:
        uploads = list(csv.DictReader(h))
    assert uploads[0]["content"] == "AAFiaW5hcnk="  # base64 of the bytes


def test_in_memory_store_can_be_backed_up(fresh_db, tmp_path):
    student = make_student(fresh_db)
    fresh_db.save_answer(student.id, "q3", "from memory")
    copy = Store(fresh_db.backup(tmp_path / "mem.db"))
    assert copy.answer(student.id, "q3").text == "from memory"
    copy.close()
