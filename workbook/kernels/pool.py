"""The kernel pool: one kernel per student, as many as memory holds, idle ones culled.

:class:`KernelPool` builds each student's kernel (a local :class:`StudentKernel`, or a
:class:`GatewayKernel` when a gateway is configured) and from then on uses it only through
the :class:`workbook.kernels.interface.Kernel` protocol; it starts it when the student arrives or
on first use, keeps warm spares (:mod:`workbook.kernels.spares`) in step with the rate at
which students arrive, and shuts down kernels left idle, keeping a notice
(:mod:`workbook.kernels.notices`) for the student's next run. How many kernels fit follows
from the machine's memory (:mod:`workbook.kernels.capacity`); when they are all taken, a
student waits in line, first come first served, until one is free.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from workbook.config import Settings
from workbook.kernels import capacity, limits, sandbox, spares, threads
from workbook.kernels.errors import KernelError
from workbook.kernels.gateway import GatewayKernel
from workbook.kernels.interface import Kernel
from workbook.kernels.kernel import StudentKernel
from workbook.kernels.run_queue import StartSlots

__all__ = ["KernelPool"]

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
# A student waiting in line looks again this often: kernels grow idle, and may be culled.
_LINE_RECHECK_S = 5.0

log = logging.getLogger(__name__)


class KernelPool:
    """One kernel per student, at most :meth:`capacity` kernels (spares included) at once.

    Spare kernels (at least ``settings.spare_kernels``, more while students arrive, see
    :mod:`workbook.kernels.spares`) are kept warm for students who need a kernel next; they
    only start while student kernels plus spares stay under the cap and nobody waits in
    line, and a ready spare is shut down when a student needs its place.

    Args:
        settings: limits, folders and whether to sandbox.
        extra_env: environment variables every kernel gets (e.g. ``LM_ENGINE_CACHE``).

    Raises:
        SandboxUnavailable: hosted mode is on but this machine cannot sandbox kernels.
    """

    def __init__(self, settings: Settings, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = dict(extra_env or {})
        self._kernels: dict[str, Kernel] = {}
        self._lock = threading.Lock()
        # Signalled whenever a kernel's place may have come free (or the cap grown).
        self._room = threading.Condition(self._lock)
        self._line: deque[tuple[str, object]] = deque()  # students waiting for a kernel
        self._notices: dict[str, str] = {}  # why a culled kernel's variables are gone
        # A spare's folder is moved to its student on adoption; a gateway kernel's folder
        # lives on the gateway's host, out of reach, so a gateway pool keeps no spares.
        # Available memory is read here, once, before this pool starts any kernel.
        self.sizing = capacity.Sizing(
            settings.max_kernels,
            settings.memory_reserve_mb,
            0 if settings.kernel_gateway else settings.spare_kernels,
            gateway=bool(settings.kernel_gateway),
        )
        self._warming: set[str] = set()  # students whose kernel warm() is getting ready
        # Starting a kernel is a burst of CPU (Python, ipykernel, their imports). Thirty
        # students starting at once on two cores would each take so long that they run
        # into the start timeout; one start per core at a time gets them all going sooner,
        # and students' starts go before spares'.
        self._starting = StartSlots(threads.cores())
        # Gateway kernels are isolated by the gateway (a pod each), not by bubblewrap here.
        if settings.sandbox and not settings.kernel_gateway:
            sandbox.check_available(settings.sandbox_uid)
            if sandbox.runs_as_root():
                limits.remove_stale()
        spares.remove_stale_folders(Path(settings.work_dir))
        self._spares = spares.SparePool(
            self._new_spare,
            self.sizing.spares,
            settings.model_name,
            room=self._room_for_spare,
            slots=self._starting.spare,
        )
        atexit.register(self.shutdown_all)

    # ----------------------------------------------------------------- building kernels
    def _new_kernel(self, user_id: str) -> Kernel:
        """Build (not start) a kernel: on the gateway when one is configured, else working
        in ``work_dir/<user_id>``."""
        if self.settings.kernel_gateway:
            return GatewayKernel(user_id, self.settings)
        # One torch thread until the run queue grants more (workbook.kernels.threads).
        env = {**threads.kernel_env(), **self.extra_env}
        return StudentKernel(
            user_id, self.settings, cwd=Path(self.settings.work_dir) / user_id, extra_env=env
        )

    def _new_spare(self) -> Kernel:
        """Build a spare kernel: an ordinary kernel in a fresh folder of its own."""
        return self._new_kernel(spares.spare_name())

    def _start(self, kernel: Kernel, *, warm_up: bool = False) -> None:
        """Start a kernel once a start slot is free (see ``_starting``); with ``warm_up``,
        ready it as a spare is, so the setup cell finds torch imported (only a speed-up)."""
        with self._starting.student():
            kernel.start()
            if warm_up:
                try:
                    kernel.inspect(spares.warm_up_code(self.settings.model_name), timeout=300)
                except KernelError as exc:
                    log.warning("could not warm up %s's kernel: %s", kernel.user_id, exc)

    # ----------------------------------------------------------------- how many fit
    def capacity(self) -> int:
        """How many kernels (spares included) may run at once (``self.sizing``)."""
        return self.sizing.cap()

    def measure(self) -> float:
        """Measure every running kernel's memory into the estimate; returns the estimate."""
        with self._lock:
            kernels = list(self._kernels.values())
        kernels += self._spares.kernels()
        pids = [kernel.pid for kernel in kernels if kernel.is_alive()]
        estimate = self.sizing.observe(capacity.kernels_pss_mb(pids))
        with self._room:
            self._room.notify_all()  # the cap may have grown
        return estimate

    def _room_for_spare(self) -> bool:
        with self._lock:
            if self._line:  # a student waiting for a kernel comes first
                return False
            return len(self._kernels) + len(self._spares) < self.capacity()

    def keep_spares(self, quiet: Callable[[], bool] = lambda: True) -> None:
        """Start refilling the spare kernels in the background.

        Args:
            quiet: whether the machine has time to warm a spare now (the app passes "no
                student is waiting in the run queue").
        """
        self._spares._quiet = quiet
        self._spares.keep_filled(workers=threads.cores())

    def tend(self) -> None:
        """Housekeeping: measure memory, fit the spares to the arrivals, cull idle kernels."""
        self.measure()
        self._spares.resize(self.sizing.spare_target())
        self.cull_idle()

    def keep_tended(self, every_s: float = 10.0) -> None:
        """Call :meth:`tend` every ``every_s`` in a daemon thread (it ends with the app)."""
        threading.Thread(target=_tend_forever, args=(self, every_s), daemon=True).start()

    def spares_ready(self) -> int:
        """Spare kernels warmed up and waiting for a student."""
        return self._spares.ready()

    def _adopt(self, kernel: Kernel, user_id: str) -> Kernel:
        """Hand a spare to a student: its folder becomes theirs (see workbook.kernels.spares)."""
        folder = Path(self.settings.work_dir) / user_id
        with kernel.lock:
            home = kernel.home
            if home is not None:  # a kernel with a folder on this machine
                spares.adopt_folder(home, folder)
                kernel.move_home(folder)  # its limits (the home quota) follow the folder
            kernel.user_id = user_id
            kernel.last_used = time.monotonic()
        return kernel

    def _take_spare(self, user_id: str, spare: Kernel | None = None) -> Kernel | None:
        """A ready spare (or ``spare``) adopted by the student, or None; holding ``_lock``."""
        spare = self._spares.take() if spare is None else spare
        if spare is None:
            return None
        try:
            return self._adopt(spare, user_id)
        except OSError:
            spare.shutdown()  # a folder could not be moved: fall back to a fresh kernel
            return None

    def _spare_instead(self, user_id: str, kernel: Kernel) -> Kernel | None:
        """The student's unstarted ``kernel`` replaced by a spare warming up now, if one is
        on its way for them (``SparePool.take``); None otherwise (or if culled meanwhile)."""
        spare = self._spares.take(wait=True)
        if spare is None:
            return None
        with self._lock:
            if self._kernels.get(user_id) is not kernel:
                spare.shutdown()
                return None
            if self._take_spare(user_id, spare) is None:
                return None
            spare.pending_notice = kernel.pending_notice
            self._kernels[user_id] = spare
        return spare

    # ----------------------------------------------------------------- handing them out
    def kernel_for(self, user_id: str) -> Kernel:
        """The student's kernel, started on first use (or restarted if it died).

        A warm spare is used when one is ready. When every kernel the cap allows is taken,
        the student waits in line (:meth:`place_in_line`) until one is free: the longest-idle
        kernel past ``settings.kernel_idle_when_full_s`` is shut down for them, or another
        student's kernel is culled or stops.

        Raises:
            KernelError: ``user_id`` cannot be used as a folder name.
            KernelDied: the kernel could not start.
        """
        return self._kernel(user_id)

    def warm(self, user_id: str) -> None:
        """Get the student's kernel ready in the background; returns at once.

        Called when a student arrives (signs in, opens the notebook): a ready spare is
        adopted, or a kernel is started and warmed up like a spare, so the first Run does
        not wait for it. Each arrival without a kernel counts towards the spares kept
        (``capacity.Sizing.spare_target``).

        Raises:
            KernelError: ``user_id`` cannot be used as a folder name.
        """
        _check_user_id(user_id)
        with self._lock:
            if user_id in self._kernels or user_id in self._warming:  # ready, or on its way
                return
            self._warming.add(user_id)
        self.sizing.arrived()
        self._spares.resize(self.sizing.spare_target())

        def work() -> None:
            try:
                self._kernel(user_id, warm_up=True)
            except KernelError as exc:  # the student's Run tries again and shows why
                log.warning("could not get %s's kernel ready: %s", user_id, exc)
            finally:
                with self._lock:
                    self._warming.discard(user_id)

        threading.Thread(target=work, name="warm-kernel", daemon=True).start()

    def place_in_line(self, user_id: str) -> int | None:
        """k >= 1 when the student is k-th in line for a kernel, None when not waiting."""
        with self._lock:
            for place, (waiting, _) in enumerate(self._line, start=1):
                if waiting == user_id:
                    return place
        return None

    def _kernel(self, user_id: str, *, warm_up: bool = False) -> Kernel:
        _check_user_id(user_id)
        while True:
            kernel, reserved = self._claim(user_id)
            with kernel.lock:
                if self.current(user_id) is not kernel:
                    continue  # replaced by a spare (or culled) while we waited for its lock
                if kernel.is_alive():
                    return kernel
                if reserved:  # a new kernel: a spare already warming up is ready sooner
                    spare = self._spare_instead(user_id, kernel)
                    if spare is not None:
                        return spare
                try:
                    self._start(kernel, warm_up=warm_up)
                except KernelError:
                    with self._lock:
                        if self._kernels.get(user_id) is kernel:
                            del self._kernels[user_id]
                            self._room.notify_all()
                    raise
                return kernel

    def _claim(self, user_id: str) -> tuple[Kernel, bool]:
        """The student's kernel object (maybe not started), after waiting in line for a place.

        Returns:
            The kernel, and whether this call reserved it (a new kernel, or a spare).
        """
        entry = (user_id, object())  # one per call: two tabs of a student wait as two
        with self._lock:
            kernel = self._kernels.get(user_id)
            if kernel is not None:
                return kernel, False
            self._line.append(entry)
        try:
            while True:
                culled: list[Kernel] = []
                with self._lock:
                    kernel = self._kernels.get(user_id)  # another tab got it meanwhile
                    if kernel is not None:
                        return kernel, False
                    if self._line[0] is entry:  # first come, first served
                        if len(self._kernels) < self.capacity():
                            return self._reserve_locked(user_id), True
                        culled = self._take_culled_locked() or self._take_culled_locked(
                            self.settings.kernel_idle_when_full_s, most=1
                        )
                    if not culled:
                        self._room.wait(_LINE_RECHECK_S)
                _stop_culled(culled)  # outside the pool's lock: a stop may take seconds
        finally:
            with self._lock:
                self._line.remove(entry)
                self._room.notify_all()

    def _reserve_locked(self, user_id: str) -> Kernel:
        """Give the student a spare or a new (unstarted) kernel; the caller holds ``_lock``."""
        kernel = self._take_spare(user_id)
        if kernel is None:
            if len(self._kernels) + len(self._spares) >= self.capacity():
                self._spares.release_one()
            kernel = self._new_kernel(user_id)
        kernel.pending_notice = self._notices.pop(user_id, "")
        self._kernels[user_id] = kernel  # reserve the place before the slow start
        self._room.notify_all()  # the student's other tabs, waiting in line, take it too
        return kernel

    def current(self, user_id: str) -> Kernel | None:
        """The student's kernel if one is running, without starting one."""
        with self._lock:
            return self._kernels.get(user_id)

    def restart(self, user_id: str) -> Kernel:
        """A fresh kernel for the student (variables lost), from the spares when one is ready.

        Returns:
            The student's kernel from now on (a spare replaces the old object, so callers
            holding the old one should ask :meth:`current` again).

        Raises:
            ServerBusy, KernelError, KernelDied: as :meth:`kernel_for`.
        """
        with self._lock:
            # The student asked for fresh variables: a cull's "your variables are gone" would
            # only confuse them on their next run.
            self._notices.pop(user_id, None)
            old = self._kernels.get(user_id)
        if old is None:
            return self.kernel_for(user_id)  # no kernel yet: a fresh one (a spare if ready)
        with old.lock:
            with self._lock:
                replaced = self._kernels.get(user_id) is not old
                self._notices.pop(user_id, None)
            if replaced:  # by another tab's restart, or culled, while we waited for its lock
                return self.kernel_for(user_id)
            old.shutdown()  # the folder must be free before the spare takes it over
            with self._lock:
                spare = self._take_spare(user_id)
                if spare is not None:
                    self._kernels[user_id] = spare
            if spare is None:
                self._start(old)
                return old
        return spare

    def _take_culled_locked(
        self, idle_s: float | None = None, *, most: int | None = None
    ) -> list[Kernel]:
        """Take the kernels idle too long (or dead) out of the pool; the caller holds ``_lock``.

        Args:
            idle_s: idle longer than this is too long (default ``settings.kernel_idle_s``).
            most: take at most this many, the longest idle first.

        Each kernel returned is still locked by this thread, so nothing runs or restarts it
        before the caller stops it with :func:`_stop_culled`, after letting go of ``_lock``.
        """
        limit = self.settings.kernel_idle_s if idle_s is None else idle_s
        now = time.monotonic()
        culled = []
        for user_id, kernel in sorted(self._kernels.items(), key=lambda item: item[1].last_used):
            if most is not None and len(culled) >= most:
                break
            idle = now - kernel.last_used > limit
            # A kernel busy running a cell holds its lock: never cull it.
            if (idle or not kernel.is_alive()) and kernel.lock.acquire(blocking=False):
                if not kernel.started and not idle:
                    kernel.lock.release()
                    continue  # being started right now by kernel_for
                self._notices[user_id] = kernel.cull_notice(idle=idle)
                del self._kernels[user_id]
                culled.append(kernel)
        if culled:
            self._room.notify_all()
        return culled

    def cull_idle(self) -> list[str]:
        """Shut down kernels idle longer than ``settings.kernel_idle_s`` (or dead).

        Returns:
            The user ids whose kernels were shut down.
        """
        with self._lock:
            culled = self._take_culled_locked()
        _stop_culled(culled)
        return [kernel.user_id for kernel in culled]

    def running(self) -> list[str]:
        """The user ids that currently have a kernel."""
        with self._lock:
            return list(self._kernels)

    def shutdown_all(self) -> None:
        """Stop every kernel, spares included (also called when the app exits)."""
        self._spares.shutdown()
        with self._lock:
            kernels = list(self._kernels.values())
            self._kernels.clear()
            self._room.notify_all()
        for kernel in kernels:
            kernel.shutdown()


def _tend_forever(pool: KernelPool, every_s: float) -> None:
    while True:
        time.sleep(every_s)
        try:
            pool.tend()
        except Exception as exc:  # noqa: BLE001 - housekeeping must go on
            log.warning("kernel pool housekeeping failed: %s", exc)


def _check_user_id(user_id: str) -> None:
    if not _USER_ID.match(user_id):
        raise KernelError(f"Cannot start a kernel for user id {user_id!r}.")


def _stop_culled(culled: list[Kernel]) -> None:
    """Stop kernels taken out by :meth:`KernelPool._take_culled_locked`, then unlock them."""
    with contextlib.ExitStack() as held:
        for kernel in culled:
            held.callback(kernel.lock.release)
        for kernel in culled:
            kernel.shutdown()  # its lock is ours (reentrant): taking it again is at once
