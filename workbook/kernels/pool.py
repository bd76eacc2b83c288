"""The kernel pool: one kernel per student, at most ``max_kernels`` at once, idle ones culled.

:class:`KernelPool` builds each student's kernel (a local :class:`StudentKernel`, or a
:class:`GatewayKernel` when a gateway is configured), starts it on first use, keeps a few
warm spares (:mod:`workbook.kernels.spares`), and shuts down kernels left idle, keeping a
notice (:mod:`workbook.kernels.notices`) for the student's next run.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from workbook.config import Settings
from workbook.kernels import limits, sandbox, spares, threads
from workbook.kernels.errors import KernelError, ServerBusy
from workbook.kernels.gateway import GatewayKernel
from workbook.kernels.kernel import StudentKernel
from workbook.kernels.notices import SERVER_BUSY

__all__ = ["KernelPool"]

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class KernelPool:
    """One kernel per student, at most ``settings.max_kernels`` at once.

    A few spare kernels (``settings.spare_kernels``, see :mod:`workbook.kernels.spares`) can be kept
    warm for students who need a kernel next; they only start while student kernels plus
    spares stay under ``max_kernels``, and a ready spare is shut down when a student needs
    its place.

    Args:
        settings: limits, folders and whether to sandbox.
        extra_env: environment variables every kernel gets (e.g. ``LM_ENGINE_CACHE``).

    Raises:
        SandboxUnavailable: hosted mode is on but this machine cannot sandbox kernels.
    """

    def __init__(self, settings: Settings, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = dict(extra_env or {})
        self._kernels: dict[str, StudentKernel] = {}
        self._lock = threading.Lock()
        self._notices: dict[str, str] = {}  # why a culled kernel's variables are gone
        # Starting a kernel is a burst of CPU (Python, ipykernel, their imports). Thirty
        # students starting at once on two cores would each take so long that they run
        # into the start timeout; one start per core at a time gets them all going sooner.
        self._starting = threading.BoundedSemaphore(threads.cores())
        # Gateway kernels are isolated by the gateway (a pod each), not by bubblewrap here.
        if settings.sandbox and not settings.kernel_gateway:
            sandbox.check_available(settings.sandbox_uid)
            if sandbox.runs_as_root():
                limits.remove_stale()
        spares.remove_stale_folders(Path(settings.work_dir))
        # A spare's folder is moved to its student on adoption; a gateway kernel's folder
        # lives on the gateway's host, out of reach, so a gateway pool keeps no spares.
        self._spares = spares.SparePool(
            self._new_spare,
            0 if settings.kernel_gateway else settings.spare_kernels,
            settings.model_name,
            room=self._room_for_spare,
            start=self._start,
        )
        atexit.register(self.shutdown_all)

    # ----------------------------------------------------------------- building kernels
    def _new_kernel(self, user_id: str) -> StudentKernel:
        """Build (not start) a kernel: on the gateway when one is configured, else working
        in ``work_dir/<user_id>``."""
        if self.settings.kernel_gateway:
            return GatewayKernel(user_id, self.settings)  # type: ignore[return-value]
        # One torch thread until the run queue grants more (workbook.kernels.threads).
        env = {**threads.kernel_env(), **self.extra_env}
        return StudentKernel(
            user_id, self.settings, cwd=Path(self.settings.work_dir) / user_id, extra_env=env
        )

    def _new_spare(self) -> StudentKernel:
        """Build a spare kernel: an ordinary kernel in a fresh folder of its own."""
        return self._new_kernel(spares.spare_name())

    def _start(self, kernel: StudentKernel) -> None:
        """Start a kernel once a start slot is free (see ``_starting``)."""
        with self._starting:
            kernel.start()

    def _room_for_spare(self) -> bool:
        with self._lock:
            return len(self._kernels) + len(self._spares) < self.settings.max_kernels

    def keep_spares(self, quiet: Callable[[], bool] = lambda: True) -> None:
        """Start refilling the spare kernels in the background.

        Args:
            quiet: whether the machine has time to warm a spare now (the app passes "no
                student is waiting in the run queue").
        """
        self._spares._quiet = quiet
        self._spares.keep_filled()

    def spares_ready(self) -> int:
        """Spare kernels warmed up and waiting for a student."""
        return self._spares.ready()

    def _adopt(self, kernel: StudentKernel, user_id: str) -> StudentKernel:
        """Hand a spare to a student: its folder becomes theirs (see workbook.kernels.spares)."""
        folder = Path(self.settings.work_dir) / user_id
        with kernel.lock:
            if getattr(kernel, "cwd", None) is not None:  # a kernel with a local folder
                spares.adopt_folder(kernel.cwd, folder)
                kernel.cwd = folder.resolve()
                if getattr(kernel, "_guard", None) is not None:
                    kernel._guard.home = kernel.cwd  # the home quota follows the moved folder
            kernel.user_id = user_id
            kernel.last_used = time.monotonic()
        return kernel

    def _take_spare(self, user_id: str) -> StudentKernel | None:
        spare = self._spares.take()
        if spare is None:
            return None
        try:
            return self._adopt(spare, user_id)
        except OSError:
            spare.shutdown()  # a folder could not be moved: fall back to a fresh kernel
            return None

    # ----------------------------------------------------------------- handing them out
    def kernel_for(self, user_id: str) -> StudentKernel:
        """The student's kernel, started on first use (or restarted if it died).

        A warm spare is used when one is ready.

        Raises:
            ServerBusy: all kernel slots are taken by active students.
            KernelError: ``user_id`` cannot be used as a folder name.
            KernelDied: the kernel could not start.
        """
        if not _USER_ID.match(user_id):
            raise KernelError(f"Cannot start a kernel for user id {user_id!r}.")
        culled: list[StudentKernel] = []
        try:
            with self._lock:
                kernel = self._kernels.get(user_id)
                if kernel is None:
                    if len(self._kernels) >= self.settings.max_kernels:
                        culled = self._take_culled_locked()
                    if len(self._kernels) >= self.settings.max_kernels:
                        raise ServerBusy(SERVER_BUSY)
                    kernel = self._take_spare(user_id)
                    if kernel is None:
                        if len(self._kernels) + len(self._spares) >= self.settings.max_kernels:
                            self._spares.release_one()
                        kernel = self._new_kernel(user_id)
                    kernel.pending_notice = self._notices.pop(user_id, "")
                    self._kernels[user_id] = kernel  # reserve the slot before the slow start
        finally:
            _stop_culled(culled)  # outside the pool's lock: a stop may take seconds
        with kernel.lock:
            if not kernel.is_alive():
                try:
                    self._start(kernel)
                except KernelError:
                    with self._lock:
                        if self._kernels.get(user_id) is kernel:
                            del self._kernels[user_id]
                    raise
        return kernel

    def current(self, user_id: str) -> StudentKernel | None:
        """The student's kernel if one is running, without starting one."""
        with self._lock:
            return self._kernels.get(user_id)

    def restart(self, user_id: str) -> StudentKernel:
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
            old._stop()  # the folder must be free before the spare takes it over
            with self._lock:
                spare = self._take_spare(user_id)
                if spare is not None:
                    self._kernels[user_id] = spare
            if spare is None:
                self._start(old)
                return old
        return spare

    def _take_culled_locked(self) -> list[StudentKernel]:
        """Take the kernels idle too long (or dead) out of the pool; the caller holds ``_lock``.

        Each kernel returned is still locked by this thread, so nothing runs or restarts it
        before the caller stops it with :func:`_stop_culled`, after letting go of ``_lock``.
        """
        now = time.monotonic()
        culled = []
        for user_id, kernel in list(self._kernels.items()):
            idle = now - kernel.last_used > self.settings.kernel_idle_s
            # A kernel busy running a cell holds its lock: never cull it.
            if (idle or not kernel.is_alive()) and kernel.lock.acquire(blocking=False):
                if kernel._proc is None and not idle:
                    kernel.lock.release()
                    continue  # being started right now by kernel_for
                self._notices[user_id] = kernel.cull_notice(idle=idle)
                del self._kernels[user_id]
                culled.append(kernel)
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
        for kernel in kernels:
            kernel.shutdown()


def _stop_culled(culled: list[StudentKernel]) -> None:
    """Stop kernels taken out by :meth:`KernelPool._take_culled_locked`, then unlock them."""
    with contextlib.ExitStack() as held:
        for kernel in culled:
            held.callback(kernel.lock.release)
        for kernel in culled:
            kernel._stop()
