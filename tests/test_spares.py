"""Spare kernels' folders, and the pool's bookkeeping, without starting a kernel."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from workbook.kernels import spares
from workbook.kernels.notices import is_memory_error as _is_memory_error
from workbook.kernels.notices import over_limit as _over_limit


def test_adopting_a_spare_keeps_every_file_the_student_had(tmp_path):
    spare = tmp_path / ".spare-1-abc"
    (spare / ".ipython").mkdir(parents=True)
    (spare / "warm.txt").write_text("from the warm-up")
    student = tmp_path / "42"
    (student / "data").mkdir(parents=True)
    (student / "data" / "x.csv").write_text("1,2")
    (student / "warm.txt").write_text("the student's")
    spares.adopt_folder(spare, student)
    assert not spare.exists()
    assert (student / "data" / "x.csv").read_text() == "1,2"
    assert (student / "warm.txt").read_text() == "the student's"  # the student's file wins
    assert (student / ".ipython").is_dir()


def test_adopting_a_spare_for_a_new_student_renames_its_folder(tmp_path):
    spare = tmp_path / ".spare-1-abc"
    spare.mkdir()
    spares.adopt_folder(spare, tmp_path / "7")
    assert [p.name for p in tmp_path.iterdir()] == ["7"]


def test_a_failed_adoption_puts_every_moved_file_back(tmp_path, monkeypatch):
    spare = tmp_path / ".spare-1-abc"
    student = tmp_path / "7"
    spare.mkdir()
    student.mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (student / name).write_text(name)
    real_rename = Path.rename
    moves: list[str] = []

    def rename(self, target):
        if self.parent == student:
            moves.append(self.name)
            if len(moves) == 2:
                raise OSError("disk trouble")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="disk trouble"):
        spares.adopt_folder(spare, student)
    assert sorted(p.name for p in student.iterdir()) == ["a.py", "b.py", "c.py"]
    assert [p.name for p in spare.iterdir()] == []
    assert (student / moves[0]).read_text() == moves[0]


def test_only_folders_of_spares_whose_app_is_gone_are_removed(tmp_path):
    mine = tmp_path / spares.spare_name()
    dead = tmp_path / ".spare-999999999-abc"
    student = tmp_path / "5"
    for folder in (mine, dead, student):
        folder.mkdir()
    assert str(os.getpid()) in mine.name
    spares.remove_stale_folders(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "5"])


class Spare:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self) -> None:
        self.log.append("start")

    def inspect(self, code: str, timeout=None):
        self.log.append("warm" if "from_pretrained" in code else "other")

    def is_alive(self) -> bool:
        return True

    def shutdown(self) -> None:
        self.log.append("shutdown")


def test_the_pool_keeps_as_many_spares_as_asked_and_only_where_there_is_room():
    log: list[str] = []
    room = [True]
    pool = spares.SparePool(lambda: Spare(log), 2, "m", room=lambda: room[0])
    assert pool.fill_one() and pool.fill_one() and not pool.fill_one()
    assert log == ["start", "warm", "start", "warm"] and pool.ready() == 2
    assert isinstance(pool.take(), Spare) and pool.ready() == 1
    room[0] = False
    assert not pool.fill_one()
    assert pool.release_one() and pool.take() is None
    pool.shutdown()
    assert not pool.fill_one()


def test_a_shutdown_waits_for_the_spare_being_started_which_stops_itself():
    log: list[str] = []
    starting, finish = threading.Event(), threading.Event()

    def start(kernel) -> None:
        starting.set()
        assert finish.wait(10)
        kernel.start()

    pool = spares.SparePool(lambda: Spare(log), 1, "m", room=lambda: True, start=start)
    filler = threading.Thread(target=pool.fill_one)
    filler.start()
    assert starting.wait(10)
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # still waiting for the spare under way
    finish.set()
    stopper.join(10)
    filler.join(10)
    assert not stopper.is_alive() and log == ["start", "warm", "shutdown"]
    assert pool.ready() == 0 and len(pool) == 0


def test_a_spare_waiting_for_a_start_slot_at_shutdown_never_starts():
    log: list[str] = []
    slot = threading.Lock()
    slot.acquire()  # every slot taken (by a student's start, say)
    pool = spares.SparePool(lambda: Spare(log), 1, "m", room=lambda: True, slots=lambda: slot)
    filler = threading.Thread(target=pool.fill_one)
    filler.start()
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()
    slot.release()
    stopper.join(10)
    filler.join(10)
    assert not stopper.is_alive() and log == []


def test_memory_errors_are_recognised_in_the_words_torch_and_mmap_use():
    def error(ename: str, evalue: str) -> dict:
        return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}

    assert _is_memory_error(error("MemoryError", ""))
    assert _is_memory_error(error("RuntimeError", "unable to mmap 538 bytes: Cannot allocate"))
    assert _is_memory_error(
        error(
            "RuntimeError",
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory",
        )
    )
    assert not _is_memory_error(error("RuntimeError", "shape mismatch"))
    assert not _is_memory_error(error("ValueError", "out of memory"))


def test_a_timeout_message_says_which_limit_the_cell_crossed():
    own = _over_limit("own", 30)
    assert "limit of 30 s" in own and "waiting for a busy server" in own
    wall = _over_limit("wall", 30)
    assert "very busy" in wall and "300 s" in wall
