"""The home quota where no per-student filesystem holds it: a per-file limit and a watcher.

Without a loop-mounted image (the app runs unprivileged, or as root with
``WORKBOOK_KERNEL_HOME_IMAGES=0`` or no loop devices) three things bound a student's folder:

1. **RLIMIT_FSIZE, lowered as the folder fills.** Linux checks it synchronously on every
   write, ``ftruncate`` and ``fallocate`` that makes a file longer, in every process and
   thread of the sandbox. A kernel starts with it at the room left (quota minus what the
   folder holds, at most ``WORKBOOK_KERNEL_MAX_FILE_MB``), and :class:`HomeWatch` lowers it
   on every process of the sandbox as the folder grows, to 0 once the quota is used up: no
   file can grow then, while deleting still works. Only root may raise a hard limit again, so
   as root the room comes back as soon as files are deleted; unprivileged, at the next start.
   :mod:`workbook.kernels.write_filter` closes the calls that take space without making a
   file longer (``fallocate`` modes, ``io_uring``).
2. **inotify** on every folder of the home (:mod:`workbook.kernels.home_inotify`): each
   file created, opened or written is looked at again every 2 ms while it may still grow, so
   a burst is seen while it is being written, not after.
3. **A stop.** Past the quota plus :data:`STOP_SLACK_MB` (folders and links, which no file
   limit bounds, or many files growing at once) every process of the sandbox is killed; an
   unfinished write ends at the next page. Nothing is deleted; the next kernel starts with
   no room to grow until the student deletes files. The watchdog's walk of the folder
   every two seconds is the backstop (a full inotify queue, a folder renamed meanwhile).

What a burst can leave beyond the quota is what the sandbox writes between the moment it
passes the quota and the kill: :data:`MARGIN_MB` bounds it, as measured by
``tests/test_home_watch.py`` and ``bench/home_quota.py`` (see README).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workbook.config import Settings
from workbook.kernels import file_limit

__all__ = [
    "FLOOR_BYTES",
    "MARGIN_FILES",
    "MARGIN_MB",
    "STOP_SLACK_FILES",
    "STOP_SLACK_MB",
    "HomeWatch",
    "measure",
]

MB = 2**20
MARGIN_MB = 160
MARGIN_FILES = 1000
STOP_SLACK_MB = 16
STOP_SLACK_FILES = 100
# The limit never goes below this: at 0 the kernel itself breaks (Python's tempfile probes
# /tmp by writing a few bytes, IPython's history and profile write a few kilobytes). A file
# that small is no way around the quota: many of them are stopped at the quota plus the slack.
FLOOR_BYTES = 64 * 1024
_HOT_S = 2.0  # how long a file is looked at again after its last event
_HOT_TICK_S = 0.002
_HOT_MAX = 256
_IDLE_TICK_S = 0.5
_PIDS_TTL_S = 0.1

# linux/inotify.h
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE, _IN_OPEN = 0x2, 0x4, 0x8, 0x20
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_ISDIR = 0x40000000
_GROWS = _IN_CREATE | _IN_OPEN | _IN_MODIFY | _IN_MOVED_TO


def measure(home: Path, max_files: int) -> tuple[dict[str, int], list[str]]:
    """What ``home`` holds: bytes on disk per entry (relative path) and its folders.

    Bytes are the blocks a file takes (``st_blocks``), so a sparse file counts what was
    written, not its length. Counting stops past ``max_files`` entries.
    """
    sizes: dict[str, int] = {}
    dirs = [""]
    todo = [""]
    while todo and len(sizes) <= max_files:
        rel = todo.pop()
        try:
            entries = list(os.scandir(os.path.join(home, rel)))
        except OSError:
            continue
        for entry in entries:
            name = os.path.join(rel, entry.name)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            sizes[name] = info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                dirs.append(name)
                todo.append(name)
    return sizes, dirs


class HomeWatch:
    """One kernel's home folder: what it holds, the file limit its processes get, the stop.

    Args:
        home: the folder on the host.
        quota_mb, max_files: the quota (``WORKBOOK_KERNEL_HOME_MB`` and ``_FILES``).
        max_file_mb: the largest file (``WORKBOOK_KERNEL_MAX_FILE_MB``).
        lower_limits: set RLIMIT_FSIZE to the room left (``False`` on a home image, where the
            filesystem refuses the write itself and the student should read ``ENOSPC``).
        sandbox_uid: the host uid the sandbox runs as, when the app runs as root.
    """

    def __init__(
        self,
        home: Path,
        *,
        quota_mb: int,
        max_files: int,
        max_file_mb: int = 0,
        lower_limits: bool = True,
        sandbox_uid: int | None = None,
    ) -> None:
        self.home = home
        self.sandbox_uid = sandbox_uid
        self.quota = quota_mb * MB
        self.max_files = max_files
        self.max_file = max_file_mb * MB
        self.lower_limits = lower_limits
        self._pids: Callable[[], list[int]] = list
        self._stop: Callable[[], None] = lambda: None
        self._pid_cache: tuple[float, list[int]] = (0.0, [])
        self._lock = threading.RLock()
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._hot: dict[str, float] = {}  # files that may still grow: until when to look
        self._stale: set[str] = set()  # paths named by events, not yet looked at
        self._applied: int | None = None
        self._can_raise = file_limit.may_raise()
        self._armed = False  # limits are set once the kernel has started (see arm)
        self.stopped = False
        self.resync()
        self.start_bytes, self.start_count = self._total, len(self._sizes)
        self.started_over = self._over(self.start_bytes, self.start_count)

    @classmethod
    def for_kernel(cls, home: Path, settings: Settings, *, image: bool) -> HomeWatch:
        """The watch of a sandboxed kernel's home (``image``: a mounted home image)."""
        s = settings
        return cls(
            home,
            quota_mb=s.kernel_home_mb,
            max_files=s.kernel_home_files,
            max_file_mb=s.kernel_max_file_mb,
            lower_limits=not image,
            sandbox_uid=s.sandbox_uid if os.geteuid() == 0 else None,
        )

    def bind(self, *, pids: Callable[[], list[int]], stop: Callable[[], None]) -> None:
        """Tell the watch its sandbox: how to list its processes and how to stop it."""
        self._pids, self._stop = pids, stop

    def arm(self) -> None:
        """The kernel has started: from now on its processes get the room that is left.

        Not before: the launcher sets its own limit once IPython has written its profile
        folder, and nothing the app sets may race with that.
        """
        self._armed = True
        self.enforce()

    # ------------------------------------------------------------------ accounting
    def usage(self) -> tuple[int, int]:
        """Bytes on disk and entries in the folder, as last counted."""
        with self._lock:
            return self._total, len(self._sizes)

    def room_mb(self) -> int:
        """The limit a kernel starts with, in whole MB (at least 1; lowered once it is up)."""
        if not self.lower_limits:
            return self.max_file // MB
        return max(1, self._target() // MB)

    def resync(self) -> list[str]:
        """Walk the whole folder again; returns its folders (relative paths)."""
        sizes, dirs = measure(self.home, self.max_files)
        with self._lock:
            self._sizes, self._total = sizes, sum(sizes.values())
        return dirs

    def _restat(self, rel: str) -> None:
        try:
            info = os.lstat(os.path.join(self.home, rel))
            size = info.st_blocks * 512
        except OSError:
            size = -1
        with self._lock:
            old = self._sizes.pop(rel, 0)
            if size >= 0:
                self._sizes[rel] = size
            self._total += max(size, 0) - old

    def _forget_under(self, rel: str) -> None:
        prefix = rel + os.sep
        with self._lock:
            gone = [name for name in self._sizes if name.startswith(prefix)]
            for name in gone:
                self._total -= self._sizes.pop(name)

    def event(self, rel: str, mask: int, now: float) -> None:
        """An inotify event about ``rel`` (relative to the home folder).

        Only notes it: :meth:`settle` stats each path named once per batch of events (a
        small file written whole brings four events).
        """
        self._stale.add(rel)
        if mask & (_IN_DELETE | _IN_MOVED_FROM):
            if mask & _IN_ISDIR:
                self._forget_under(rel)
            self._hot.pop(rel, None)
        elif mask & _IN_ISDIR:
            return
        elif mask & _GROWS:
            self._hot[rel] = now + _HOT_S
        elif mask & _IN_CLOSE_WRITE:
            self._hot.pop(rel, None)

    def settle(self) -> None:
        """Stat every path the last events named."""
        stale, self._stale = self._stale, set()
        for rel in stale:
            self._restat(rel)

    def hot(self) -> bool:
        """Whether a file may still be growing (then the watcher looks again soon)."""
        return bool(self._hot)

    def look_again(self, now: float) -> None:
        """Stat the files that may still be growing; forget those quiet for a while."""
        if len(self._hot) > _HOT_MAX:
            return  # many files open at once: their own events must do
        for rel, until in list(self._hot.items()):
            self._restat(rel)
            if until < now:
                self._hot.pop(rel, None)

    # ------------------------------------------------------------------ enforcing
    def _over(self, size: int, count: int) -> bool:
        return size > self.quota or count > self.max_files

    def _target(self) -> int:
        room = max(0, self.quota - self._total)
        return max(FLOOR_BYTES, min(self.max_file, room // 4096 * 4096))

    def enforce(self) -> None:
        """Stop the sandbox past the quota; else give its processes the room that is left."""
        if self.stopped:
            return
        size, count = self.usage()
        # One that started over the quota may delete, and is stopped only when it grows
        # past where it started. The slack lets the kernel itself start and run (IPython's
        # profile and history, a temporary file) in a folder that is full.
        too_big = size > max(self.start_bytes, self.quota) + STOP_SLACK_MB * MB
        too_many = count > max(self.start_count, self.max_files) + STOP_SLACK_FILES
        if too_big or too_many:
            self.stopped = True
            self._stop()
            return
        if self.lower_limits and self._armed:
            self._set_limit(self._target())

    def _set_limit(self, target: int) -> None:
        applied = self._applied
        if applied is not None and (
            target == applied or (target > applied and not self._can_raise)
        ):
            return
        now = time.monotonic()
        at, pids = self._pid_cache
        # A process forked since the last listing inherited its parent's limit then; the
        # next listing (a tenth of a second later) lowers its own.
        if now - at > _PIDS_TTL_S:
            pids = self._pids()
            self._pid_cache = (now, pids)
        file_limit.lower(pids, target, self.sandbox_uid)
        self._applied = target
