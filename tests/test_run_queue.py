"""The run queue: a few runs at once, the rest first come first served, places visible."""

from __future__ import annotations

import threading

import pytest

from workbook.kernels.run_queue import RunQueue


def _hold(queue: RunQueue, user: str, entered: list, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with queue.slot(user):
            entered.append(user)
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_until(predicate, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition never became true")


def test_at_most_slots_runs_go_at_once_and_the_rest_wait_in_arrival_order():
    queue = RunQueue(2)
    entered: list[str] = []
    gates = {name: threading.Event() for name in "abcde"}
    threads = []
    for name in "abcde":
        threads.append(_hold(queue, name, entered, gates[name]))
        # Each one is in line (or running) before the next arrives: arrival order is known.
        _wait_until(lambda n=name: queue.position(n) is not None)
    assert entered == ["a", "b"]
    assert [queue.position(n) for n in "abcde"] == [0, 0, 1, 2, 3]
    assert queue.running() == 2 and queue.waiting() == 3

    gates["b"].set()
    _wait_until(lambda: entered == ["a", "b", "c"])
    assert [queue.position(n) for n in "abcde"] == [0, None, 0, 1, 2]
    for name in "acde":
        gates[name].set()
    for thread in threads:
        thread.join(10)
    assert entered == list("abcde")
    assert queue.running() == 0 and queue.position("a") is None


def test_a_failing_run_gives_its_slot_back():
    queue = RunQueue(1)
    with pytest.raises(ZeroDivisionError), queue.slot(7):
        raise ZeroDivisionError
    with queue.slot(8) as ticket:
        assert ticket.running and queue.position(8) == 0 and queue.position("8") == 0


def test_a_ticket_says_since_when_it_runs():
    queue = RunQueue(1)
    assert queue.ticket(1) is None
    with queue.slot(1) as ticket:
        assert queue.ticket("1") is ticket and ticket.running and ticket.since > 0


def test_a_queue_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        RunQueue(0)
