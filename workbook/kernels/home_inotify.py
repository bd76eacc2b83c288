"""One inotify instance and one thread that follow every watched home folder of the app.

Events go to the :class:`~workbook.kernels.home_watch.HomeWatch` of the folder they are
about; a file that may still grow is looked at again every 2 ms until it is closed or quiet.
inotify is reached through libc (``inotify_init1``, ``inotify_add_watch``); where it cannot
be had, the watchdog's walk every two seconds counts the folders alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
import threading
import time
from pathlib import Path

from workbook.kernels.home_watch import (
    _HOT_TICK_S,
    _IDLE_TICK_S,
    _IN_ATTRIB,
    _IN_CLOSE_WRITE,
    _IN_CREATE,
    _IN_DELETE,
    _IN_ISDIR,
    _IN_MODIFY,
    _IN_MOVED_FROM,
    _IN_MOVED_TO,
    _IN_OPEN,
    HomeWatch,
    measure,
)

__all__ = ["Watcher", "watcher"]

# linux/inotify.h
_IN_Q_OVERFLOW, _IN_IGNORED = 0x4000, 0x8000
_IN_ONLYDIR, _IN_DONT_FOLLOW, _IN_EXCL_UNLINK = 0x01000000, 0x02000000, 0x04000000
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_OPEN | _IN_MOVED_FROM | _IN_MOVED_TO) | (
    _IN_CREATE | _IN_DELETE | _IN_ONLYDIR | _IN_DONT_FOLLOW | _IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name)


class _Inotify:
    """The few inotify calls the watcher needs, through libc."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd

    def add(self, path: str) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _MASK)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {path}")
        return wd

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        """Every event queued now: (watch, mask, name)."""
        events = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + size].split(b"\0", 1)[0]
                offset += size
                events.append((wd, mask, os.fsdecode(raw)))


class Watcher:
    """One thread and one inotify instance for every watched home of the app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inotify: _Inotify | None = None
        self._wds: dict[int, tuple[HomeWatch, str]] = {}
        self._watches: dict[int, HomeWatch] = {}
        self._thread: threading.Thread | None = None

    def watch(self, home: HomeWatch) -> bool:
        """Follow ``home``'s folders; ``False`` where inotify is unavailable (poll only)."""
        with self._lock:
            try:
                if self._inotify is None:
                    self._inotify = _Inotify()
            except OSError:
                return False
            self._watches[id(home)] = home
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="workbook-home-watch", daemon=True
                )
                self._thread.start()
        self._add_dirs(home, home.resync())
        home.enforce()
        return True

    def refresh(self, home: HomeWatch) -> None:
        """Count ``home`` again from scratch, follow any folder missed, and enforce."""
        self._add_dirs(home, home.resync())
        home.enforce()

    def forget(self, home: HomeWatch) -> None:
        """Stop following ``home``."""
        with self._lock:
            self._watches.pop(id(home), None)
            mine = [wd for wd, (owner, _) in self._wds.items() if owner is home]
            for wd in mine:
                del self._wds[wd]
                if self._inotify is not None:
                    self._inotify.remove(wd)

    def _add_dirs(self, home: HomeWatch, dirs: list[str]) -> None:
        with self._lock:
            if self._inotify is None or id(home) not in self._watches:
                return
            for rel in dirs:
                try:
                    wd = self._inotify.add(os.path.join(home.home, rel))
                except OSError:
                    continue  # gone meanwhile, or out of watches: the poll still counts it
                self._wds[wd] = (home, rel)

    def _loop(self) -> None:
        # What a burst leaves past the quota is what it writes before this thread runs:
        # where allowed (root), it goes before other work on a busy machine.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        while True:
            with self._lock:
                homes = list(self._watches.values())
                inotify = self._inotify
            if inotify is None:
                return
            timeout = _HOT_TICK_S if any(h.hot() for h in homes) else _IDLE_TICK_S
            ready, _, _ = select.select([inotify.fd], [], [], timeout)
            now = time.monotonic()
            touched: dict[int, HomeWatch] = {}
            if ready:
                for wd, mask, name in inotify.read():
                    try:
                        self._dispatch(wd, mask, name, now, touched)
                    except Exception:  # noqa: BLE001 - one odd folder must not stop the others
                        continue
            for home in homes:
                if home.hot():
                    home.look_again(now)
                    touched[id(home)] = home
            for home in touched.values():
                with contextlib.suppress(Exception):
                    home.settle()
                    home.enforce()

    def _dispatch(
        self, wd: int, mask: int, name: str, now: float, touched: dict[int, HomeWatch]
    ) -> None:
        if mask & _IN_Q_OVERFLOW:
            # Events were lost: count every folder again.
            with self._lock:
                homes = list(self._watches.values())
            for home in homes:
                self._add_dirs(home, home.resync())
                touched[id(home)] = home
            return
        with self._lock:
            owner = self._wds.get(wd)
            if mask & _IN_IGNORED:
                self._wds.pop(wd, None)
        if owner is None or mask & _IN_IGNORED:
            return
        home, folder = owner
        rel = os.path.join(folder, name) if name else folder
        if mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO):
            # A new folder (or one moved in, with its contents): follow it and count it.
            sizes, dirs = measure(Path(home.home) / rel, home.max_files)
            self._add_dirs(home, [os.path.join(rel, d) if d else rel for d in dirs])
            for sub in sizes:
                home.event(os.path.join(rel, sub), _IN_ATTRIB, now)
        home.event(rel, mask, now)
        touched[id(home)] = home


_watcher = Watcher()


def watcher() -> Watcher:
    """The app's one home watcher."""
    return _watcher
