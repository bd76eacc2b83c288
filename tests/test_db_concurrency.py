"""Many writers at once, and a writer killed mid-transaction: nothing is lost or corrupted."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

from db_fixtures import PASSWORD, make_student

from db import DbError, Store

PROCESSES = 4
SAVES = 200


def _save_many(path: str, user_id: int, worker: int, start, errors) -> None:
    """Child process: wait for the start signal, then save SAVES answers as fast as possible."""
    try:
        store = Store(path)
        start.wait(30)
        for n in range(SAVES):
            store.save_answer(user_id, "q1", f"worker {worker} save {n}")
        store.close()
    except (DbError, sqlite3.Error) as error:  # reported to the parent, which asserts
        errors.put(f"worker {worker}: {type(error).__name__}: {error}")


def test_four_processes_saving_at_once_lose_nothing(tmp_path):
    path = tmp_path / "busy.db"
    store = Store(path)
    student = make_student(store)
    ctx = multiprocessing.get_context("spawn")
    start, errors = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_save_many, args=(str(path), student.id, w, start, errors))
        for w in range(PROCESSES)
    ]
    for p in workers:
        p.start()
    time.sleep(1.0)  # let every child open the store before they race
    began = time.perf_counter()
    start.set()
    for p in workers:
        p.join(120)
    elapsed = time.perf_counter() - began
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert problems == [], problems
    assert [p.exitcode for p in workers] == [0] * PROCESSES
    texts = [rev.text for rev in store.answer_history(student.id, "q1")]
    expected = {f"worker {w} save {n}" for w in range(PROCESSES) for n in range(SAVES)}
    assert len(texts) == PROCESSES * SAVES
    assert set(texts) == expected
    # Each worker's own saves appear in the order it made them.
    for w in range(PROCESSES):
        mine = [t for t in texts if t.startswith(f"worker {w} ")]
        assert mine == [f"worker {w} save {n}" for n in range(SAVES)]
    print(f"{PROCESSES * SAVES} concurrent saves in {elapsed:.2f} s")
    store.close()


def test_threads_sharing_one_store_lose_nothing(store):
    student = make_student(store)
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in range(50):
                store.save_answer(student.id, "q2", f"thread {t} save {n}")
        except (DbError, sqlite3.Error) as error:  # collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(store.answer_history(student.id, "q2")) == 8 * 50


def _die_mid_transaction(path: str, user_id: int, ready) -> None:
    """Child process: write inside an open transaction, signal, then wait to be killed."""
    store = Store(path)
    with store._write() as db:
        db.execute(
            "INSERT INTO answer_revisions (user_id, question_id, text, created_at)"
            " VALUES (?, 'q1', 'never committed', '2026-01-01T00:00:00.000000+00:00')",
            [user_id],
        )
        db.execute("UPDATE users SET name = 'Corrupted' WHERE id = ?", [user_id])
        ready.set()
        time.sleep(120)


def test_process_killed_mid_transaction_leaves_previous_state(tmp_path):
    path = tmp_path / "crash.db"
    store = Store(path)
    student = make_student(store)
    store.save_answer(student.id, "q1", "committed answer")
    store.close()

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_die_mid_transaction, args=(str(path), student.id, ready))
    child.start()
    assert ready.wait(60), "child never reached the middle of its transaction"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    reopened = Store(path)
    assert [r.text for r in reopened.answer_history(student.id, "q1")] == ["committed answer"]
    assert reopened.user(student.id).name == "Student 1"
    # The dead writer's lock is gone: new writes succeed at once.
    reopened.save_answer(student.id, "q1", "after the crash")
    assert reopened.answer(student.id, "q1").text == "after the crash"
    conn = sqlite3.connect(Path(path))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert reopened.authenticate(student.email, PASSWORD).id == student.id
    reopened.close()
