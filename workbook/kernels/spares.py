"""Kernels started ahead of time, so a student's setup cell takes a second, not fifteen.

Starting a kernel and importing torch + transformers takes 5-10 s of CPU; loading the model
the first time in a process takes more. A :class:`SparePool` keeps a few kernels that have
already done all of that (``warm_up_code``: the imports, a model load and one forward pass,
then the model is freed again, leaving the modules imported and the weights' pages in the
OS cache), refilled in the background when the machine is not busy. A student who needs a
kernel (first run, restart) gets a spare when one is ready, else a fresh one as before.

**Folders.** A kernel's working folder is fixed when it starts (in hosted mode it is bound as
the sandbox's ``/home/student``), and a spare does not know its student yet. So each spare
starts in a fresh, empty folder of its own (``WORKBOOK_WORK_DIR/.spare-<app pid>-<random>``); when a
student takes it, :func:`adopt_folder` moves the student's existing files (if any) into
that folder and renames it to the student's folder (``WORKBOOK_WORK_DIR/<user>``). A rename
keeps the bind mount and the process's working directory pointing at the same folder, so
the student's kernel sees their files at the usual place and nothing else changes. Every
sandbox rule holds: the spare was started with the same command line a student's kernel
gets, only its home folder's name differs until it is adopted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbook.kernels import home_quota
from workbook.kernels.interface import Kernel

__all__ = ["SPARE_PREFIX", "SparePool", "adopt_folder", "remove_stale_folders", "warm_up_code"]

SPARE_PREFIX = ".spare-"
_WARM_UP_TIMEOUT_S = 300
# How long a pool's shutdown waits for the spares still starting to stop themselves.
_SHUTDOWN_WAIT_S = 60.0


class _Stopped(Exception):
    """The pool was shut down while this spare waited for a start slot."""


log = logging.getLogger(__name__)

# Runs silently in the spare: everything happens inside a function, so the student's
# namespace is as empty as a fresh kernel's; only sys.modules and the OS cache stay warm.
_WARM_UP = """\
def __workbook_warm_up__(model_name):
    import inspect
    import pandas
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import lm_engine

    src = lm_engine.resolve(model_name)
    tokenizer = AutoTokenizer.from_pretrained(src.path, **src.tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(src.path)
    with torch.no_grad():
        model(tokenizer("warm up", return_tensors="pt")["input_ids"])
    if {tables!r}:
        pandas.DataFrame({{"warm": [1]}}).to_html()
    return len(tokenizer)


__workbook_result__ = __workbook_warm_up__({model_name!r})
del __workbook_warm_up__
__import__("gc").collect()
"""


def warm_up_code(model_name: str, *, tables: bool = True) -> str:
    """The silent snippet that readies a spare kernel for ``model_name``.

    Args:
        model_name: the model the setup cell loads.
        tables: also render a pandas table once. The kernel template
            (:mod:`workbook.kernels.template`) leaves it out: pyarrow's allocator reserves
            1 GB of address space at the first table, which every forked kernel would then
            carry against its ``RLIMIT_AS`` from the start.
    """
    return _WARM_UP.format(model_name=model_name, tables=tables)


def spare_name() -> str:
    """A fresh spare's id, which is also its folder's name (hidden, never a user id).

    It names this app's process, so an app sharing the folder never removes it as stale.
    """
    return f"{SPARE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"


def remove_stale_folders(work_dir: Path) -> None:
    """Remove spares' folders left by an app that was killed (they hold no student files).

    As root, every home image still mounted under ``work_dir`` is unmounted first and its
    loop device released (:func:`home_quota.unmount_stale`); the students' images stay.
    """
    if not work_dir.is_dir():
        return
    if os.geteuid() == 0:
        home_quota.unmount_stale(work_dir, keep=_of_live_app)
    images = work_dir / home_quota.IMAGES
    for folder in [*work_dir.glob(f"{SPARE_PREFIX}*"), *images.glob(f"{SPARE_PREFIX}*.img")]:
        if _of_live_app(folder):
            continue
        if folder.suffix == ".img":
            folder.unlink(missing_ok=True)
        else:
            with contextlib.suppress(OSError):
                home_quota.unmount(folder)  # a spare's own image (app as root)
            shutil.rmtree(folder, ignore_errors=True)


def _of_live_app(path: Path) -> bool:
    """Whether ``path`` is a spare's folder (or image) of an app still running."""
    if not path.name.startswith(SPARE_PREFIX):
        return False
    owner = path.name[len(SPARE_PREFIX) :].split("-", 1)[0]
    return owner.isdigit() and _alive(int(owner))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def adopt_folder(spare_folder: Path, student_folder: Path) -> None:
    """Make the spare's folder the student's, keeping every file the student had.

    The student's files are moved (renamed, same filesystem) into the spare's folder, which
    then takes the student folder's name. Where a name exists in both, the student's file
    wins: the spare's copy was made by the warm-up, never by a student.

    Raises:
        OSError: a move failed; the files already moved are back in the student's folder
            (the caller then starts a fresh kernel there, and the spare's folder is removed).
    """
    if os.path.ismount(spare_folder):
        # The spare's home is its own image (home_quota): copy in, then move the mount.
        home_quota.adopt(spare_folder, student_folder)
        return
    moved: list[str] = []
    try:
        if student_folder.exists():
            for entry in list(student_folder.iterdir()):
                target = spare_folder / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                entry.rename(target)
                moved.append(entry.name)
            student_folder.rmdir()
        spare_folder.rename(student_folder)
    except OSError:
        student_folder.mkdir(mode=0o700, exist_ok=True)
        for name in moved:
            (spare_folder / name).rename(student_folder / name)
        raise


class SparePool:
    """A few warm kernels waiting for students.

    Args:
        make: builds (does not start) a new spare kernel.
        size: how many spares to keep ready (0 turns the pool off).
        model_name: the model the warm-up loads.
        room: whether one more kernel may run now (the pool's cap on kernels).
        quiet: whether the machine has time for a warm-up now (no student waits to run).
        start: starts a kernel.
        slots: gives what is held around each spare's start and warm-up together (the
            pool's ``StartSlots.spare``: at most one start per core, students first).

    The number kept ready can change while the app runs (:meth:`resize`: the pool follows
    the rate at which students arrive).
    """

    def __init__(
        self,
        make: Callable[[], Kernel],
        size: int,
        model_name: str,
        *,
        room: Callable[[], bool],
        quiet: Callable[[], bool] = lambda: True,
        start: Callable[[Kernel], None] = lambda kernel: kernel.start(),
        slots: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.size = size
        self.model_name = model_name
        self._make = make
        self._room = room
        self._quiet = quiet
        self._start = start
        self._slots = slots
        self._ready: list[Kernel] = []
        self._warming = 0  # spares being started (or waiting for a start slot)
        self._under_way = 0  # of those, the ones holding a start slot
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a spare got ready, or failed
        self._takers: list[object] = []  # students waiting for a spare, first come first
        self._wake = threading.Event()
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def __len__(self) -> int:
        """Spares ready or warming up (each is a kernel process)."""
        with self._lock:
            return len(self._ready) + self._warming

    def ready(self) -> int:
        """Spares warmed up and waiting for a student."""
        with self._lock:
            return len(self._ready)

    def take(self, wait: bool = False) -> Kernel | None:
        """A ready spare (removed from the pool), or None; wakes the refill.

        Args:
            wait: when no spare is ready, wait for one that is warming up now (holding a
                start slot), if it is not promised to a student who asked earlier (first
                come, first served). A spare under way is ready sooner than a new kernel.
        """
        ticket = object()
        kernel = None
        with self._changed:
            self._takers.append(ticket)
            try:
                while True:
                    place = self._takers.index(ticket)  # takers ahead of this one
                    if place == 0 and self._ready:
                        kernel = self._ready.pop(0)
                        if kernel.is_alive():
                            break
                        kernel.shutdown()
                        kernel = None
                        continue
                    coming = len(self._ready) + self._under_way
                    if not wait or place >= coming or self._stopped:
                        break
                    self._changed.wait()
            finally:
                self._takers.remove(ticket)
                self._changed.notify_all()
        self._wake.set()
        return kernel

    def fill_one(self) -> bool:
        """Start and warm one spare if the pool is short and there is room.

        Returns:
            Whether a spare was added.
        """
        # Asked before taking our own lock: room() takes the kernel pool's lock, which is
        # held while it calls into this pool (one lock order: pool, then spares).
        if not self._room():
            return False
        with self._lock:
            if self._stopped or len(self._ready) + self._warming >= self.size:
                return False
            self._warming += 1
        kernel = None
        under_way = False
        try:
            with self._slots():  # the warm-up is most of a spare's start-up work
                with self._lock:
                    if self._stopped:  # shut down while this one waited for a slot
                        raise _Stopped
                    self._under_way += 1  # from now on a student may wait for it
                    under_way = True
                kernel = self._make()
                self._start(kernel)
                kernel.inspect(warm_up_code(self.model_name), timeout=_WARM_UP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a failed spare is only a missed speed-up
            if not isinstance(exc, _Stopped):
                log.warning("could not prepare a spare kernel: %s", exc)
            if kernel is not None:
                with contextlib.suppress(Exception):  # noqa: BLE001
                    kernel.shutdown()
            with self._changed:
                self._warming -= 1
                self._under_way -= under_way
                self._changed.notify_all()  # a student waiting for it starts their own
            return False
        with self._changed:
            self._warming -= 1
            self._under_way -= 1
            self._changed.notify_all()
            if self._stopped:
                kernel.shutdown()
                return False
            self._ready.append(kernel)
        return True

    def keep_filled(self, every_s: float = 5.0, workers: int = 1) -> None:
        """Refill in background threads (started once; daemons, they end with the app).

        Args:
            every_s: how often an idle refill looks again without being woken.
            workers: spares that may warm up at the same time (the ``slots`` bound them
                together with the students' kernel starts).
        """
        if self.size <= 0 or self._threads:
            return

        def loop() -> None:
            while not self._stopped:
                if self._quiet() and self.fill_one():
                    continue
                self._wake.wait(every_s)
                self._wake.clear()

        for number in range(max(1, workers)):
            thread = threading.Thread(target=loop, name=f"spare-kernels-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def resize(self, size: int) -> None:
        """Keep ``size`` spares from now on; ready spares past it are shut down."""
        with self._lock:
            grew = size > self.size
            self.size = size
            surplus = len(self._ready) - size
            kernels = [self._ready.pop() for _ in range(max(0, surplus))]
        for kernel in kernels:
            kernel.shutdown()
        if grew:
            self._wake.set()

    def kernels(self) -> list[Kernel]:
        """The spares ready now (a copy of the list; for measuring their memory)."""
        with self._lock:
            return list(self._ready)

    def release_one(self) -> bool:
        """Shut one ready spare down to make room for a student; whether one was."""
        with self._lock:
            kernel = self._ready.pop() if self._ready else None
        if kernel is None:
            return False
        kernel.shutdown()
        return True

    def shutdown(self, wait_s: float = _SHUTDOWN_WAIT_S) -> None:
        """Stop refilling, shut every ready spare down, and wait (at most ``wait_s``) for
        the spares being started: each one shuts itself down when its start ends, so none
        outlives the pool (in hosted mode as root, with its home image still mounted)."""
        with self._changed:
            self._stopped = True
            kernels, self._ready = self._ready, []
            self._changed.notify_all()
        self._wake.set()
        for kernel in kernels:
            kernel.shutdown()
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self._warming and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            if self._warming:
                log.warning("%d spare kernel(s) still starting at shutdown", self._warming)
