"""The facade the pages call: ties settings, storage, the engine and kernels together.

One ``Workbook`` lives per app process (cached by ``pages/common.py``) and is shared by every
session and thread, so it holds no per-user state: the store opens a connection per thread,
the engine is read-only at inference, and the kernel pool locks per student.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from db import DbError, NotFoundError, Store, User
from workbook.accounts import Accounts
from workbook.config import Settings
from workbook.errors import WorkbookError
from workbook.exercise import content
from workbook.kernels.errors import KernelError
from workbook.kernels.run_queue import RunQueue, RunState
from workbook.lti.services import LtiServices

if TYPE_CHECKING:
    from lm_engine import LanguageModel
    from workbook.kernels.pool import KernelPool
    from workbook.submission import Bundle

__all__ = ["RunState", "User", "Workbook", "WorkbookError"]

log = logging.getLogger(__name__)

DUE_DATE_KEY = "due_date"

# The given setup cell imports torch and loads the model: on a fresh (not pre-warmed) kernel
# of a busy server that can take a while, and it must never be cut off for that.
GIVEN_CELL_TIMEOUT_S = 180

_SHARED: dict[Settings, Workbook] = {}  # Workbook.shared: one per configuration
_SHARED_LOCK = threading.Lock()


class Workbook(Accounts):
    """App-wide services; cheap to build (everything heavy is created on first use).

    Accounts, sign-in and remembered sessions come from ``workbook.accounts.Accounts``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Many Streamlit threads may ask for a part at once: each is built once, under its
        # own lock (building the kernel pool may take a while and must not hold up sign-ins).
        self._store_lock = threading.Lock()
        self._kernels_lock = threading.Lock()
        self._store: Store | None = None
        self._kernels: KernelPool | None = None
        # One slot per Run covers the cell and its check; runs past the slots wait in line.
        self.run_queue = RunQueue(settings.run_slots)
        self._preloaded = False
        # user id -> time.time() its current run started, kernel start included (run_state)
        self._running_since: dict[int, float] = {}
        self._running_lock = threading.Lock()
        self.lti = LtiServices(self)  # TA paths scoped to sections; grades and class list

    def preflight(self) -> None:
        """Check, once at start-up, that the configured mode can run at all.

        Hosted mode (``WORKBOOK_SANDBOX=1``) refuses to start unless student kernels can
        really be sandboxed; it never falls back to running them unsandboxed.

        Raises:
            WorkbookError: what is missing and what to do about it.
        """
        # With a kernel gateway no student code runs here: the gateway isolates kernels.
        if self.settings.sandbox and not self.settings.kernel_gateway:
            from workbook.kernels.sandbox import check_available

            try:
                check_available(self.settings.sandbox_uid)
            except KernelError as exc:
                raise WorkbookError(str(exc)) from exc

    def preload(self) -> None:
        """Get the slow parts ready in the background, once, when the app starts.

        Sets the app's torch threads (``workbook.kernels.threads``), loads the reference model so
        no student's first check waits for it, and starts the kernel pool with its spare
        kernels. Failures are logged and surface again where the part is used. Does nothing
        when ``settings.preload`` is off (page tests).
        """
        with self._kernels_lock:
            if self._preloaded or not self.settings.preload:
                return
            self._preloaded = True

        self.start_services()  # also started as the server starts (serve.py)

        def work() -> None:
            from workbook.kernels import threads

            try:
                threads.configure_app()
                self.engine()
                self.kernels.keep_spares(quiet=lambda: self.run_queue.waiting() == 0)
            except Exception as exc:  # noqa: BLE001 - a background warm-up must not crash the app
                log.warning("preloading failed (it is retried on first use): %s", exc)

        threading.Thread(target=work, name="workbook-preload", daemon=True).start()

    @classmethod
    def shared(cls, settings: Settings) -> Workbook:
        """The process's one ``Workbook`` for these settings: the pages and the server's
        start-up share it, so one outbox thread posts the scores (two would post twice)."""
        with _SHARED_LOCK:
            if settings not in _SHARED:
                _SHARED[settings] = cls(settings)
            return _SHARED[settings]

    def start_services(self) -> None:
        """Start the LTI score outbox (``LtiServices.start``), preload or not: ``serve.py``
        calls this as the server starts. Returns at once."""
        threading.Thread(target=self._start_lti, name="workbook-lti-start", daemon=True).start()

    def _start_lti(self) -> None:
        try:
            self.lti.start()  # the next queued score starts it otherwise
        except (DbError, WorkbookError, OSError) as exc:
            log.error("the LTI score outbox did not start: %s", exc)

    # --- the parts -------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The SQLite store (created and migrated on first use)."""
        with self._store_lock:
            if self._store is None:
                self.settings.db_path.parent.mkdir(parents=True, exist_ok=True)
                self._store = Store(
                    self.settings.db_path,
                    question_ids=content.question_ids(),
                    step_ids=content.step_ids(),
                )
            return self._store

    def engine(self) -> LanguageModel:
        """The course's model, loaded once per process (lm_engine caches it)."""
        from lm_engine import LMEngineError, load_model

        try:
            return load_model(self.settings.model_name)
        except LMEngineError as exc:
            raise WorkbookError(str(exc)) from exc

    @property
    def kernels(self) -> KernelPool:
        """One Jupyter kernel per signed-in student, started on demand."""
        with self._kernels_lock:
            if self._kernels is None:
                self._kernels = self._start_kernel_pool()
            return self._kernels

    def _start_kernel_pool(self) -> KernelPool:
        from lm_engine import EngineConfig, LMEngineError, resolve
        from workbook.kernels.pool import KernelPool

        # Build the model cache before any kernel starts: sandboxed kernels can only read it,
        # and every student's setup cell loads the same cached weights.
        engine_config = EngineConfig.from_env()
        try:
            resolve(self.settings.model_name, config=engine_config)
        except LMEngineError as exc:
            raise WorkbookError(str(exc)) from exc
        pool = KernelPool(
            self.settings, extra_env={"LM_ENGINE_CACHE": str(engine_config.cache_dir)}
        )
        pool.keep_tended()  # memory measured, spares fitted to arrivals, idle kernels culled
        return pool

    def steps(self) -> list[content.Step]:
        """The notebook's cells for the configured model (setup first)."""
        return content.steps(self.settings.model_name)

    # --- course settings (the instructor's) -------------------------------------------------
    def due_date(self) -> date | None:
        """The homework's due date, if the instructor set one."""
        raw = self.store.setting(DUE_DATE_KEY)
        return date.fromisoformat(raw) if raw else None

    def set_due_date(self, user: User, due: date | None) -> None:
        """Set (or clear, with ``None``) the due date students see.

        Raises:
            WorkbookError: the user is not the instructor.
        """
        if user.role != "instructor":
            raise WorkbookError("Only the instructor can change the due date.")
        self.store.set_setting(DUE_DATE_KEY, due.isoformat() if due else None)

    # --- progress and feedback ---------------------------------------------------------
    def progress(self, user_id: int) -> Progress:
        """How far a student is: the same counts the TAs' roster shows."""
        from workbook.review import roster

        row = next(r for r in self.store.roster(include_archived=True) if r.user_id == user_id)
        return Progress(
            steps_passed=row.steps_passed,
            steps_total=sum(1 for step in self.steps() if not step.given),
            reflections=roster.reflections_counted(row),
            answers=row.answers_nonempty,
            answers_total=row.questions_total,
        )

    def released_feedback(self, user_id: int):
        """The feedback a TA released to this student, or None."""
        try:
            return self.store.released_feedback_for(user_id)
        except NotFoundError:
            return None

    def export_bundle(self, user_id: int) -> Bundle:
        """Build a student's bundle and record it as the Submit page's download does.

        The record goes through ``lti.record_export``, so Moodle is told the homework is
        handed in (unless a grade was released); the outbox posts it.

        Raises:
            ExportError: the account is gone or the notebook would not validate.
            DbError: the export could not be recorded.
        """
        from workbook.submission import export_for

        bundle = export_for(self.store, user_id, model_name=self.settings.model_name)
        self.lti.record_export(user_id, bundle.file_name, bundle.notebook_sha256)
        return bundle

    # --- the notebook ------------------------------------------------------------------
    def cells(self, user_id: int) -> dict:
        """The latest saved revision of each of the student's cells, by step id."""
        return self.store.cells_for(user_id)

    def save_code(self, user_id: int, step_id: str, code: str) -> None:
        """Autosave a cell's code without running it (appends a revision)."""
        try:
            self.store.save_cell(user_id, step_id, code=code)
        except DbError as exc:
            raise WorkbookError(str(exc)) from exc

    def run_step(self, user_id: int, step_id: str, code: str | None = None) -> CellRun:
        """Run a step's code in the student's kernel, check it, and save code + outputs.

        Args:
            user_id: the student.
            step_id: which step (see ``workbook.exercise.content``).
            code: the code to run; ``None`` runs the saved code (or the given code of a
                given cell such as setup).
        """
        from workbook.exercise import checks

        step = content.step(step_id, self.settings.model_name)
        timeout = self.settings.cell_timeout_s
        if step.given:
            code, timeout = step.starter_code, max(timeout, GIVEN_CELL_TIMEOUT_S)
        elif code is None:
            saved = self.store.cells_for(user_id).get(step_id)
            code = saved.code if saved is not None else step.starter_code
        # Save first: the code is kept even if the kernel fails below.
        self.save_code(user_id, step_id, code)
        try:
            check = None
            with self._running(user_id), self._admitted(user_id) as kernel:
                result = kernel.execute(code, timeout=timeout)
                if result.status == "ok" and step.check is not None:
                    try:
                        lm = self.engine()
                    except WorkbookError as exc:  # the cell ran: keep its outputs, unchecked
                        unchecked = (
                            f"Your code ran, but it could not be checked: {str(exc).rstrip('.')}."
                        )
                        result = replace(result, message=f"{result.message} {unchecked}".strip())
                    else:
                        check = checks.run_check(step, kernel, lm, outputs=result.outputs)
        except KernelError as exc:
            raise WorkbookError(str(exc)) from exc
        # Code autosaved while the cell ran (read before the run's revision) stays the latest.
        typed = self.store.cells_for(user_id)[step_id].code
        self.store.save_cell(
            user_id,
            step_id,
            code=code,
            outputs=result.outputs,
            execution_count=result.execution_count,
            passed=None if check is None else check.passed,
            message=None if check is None else check.message,
            cause=None if check is None else check.cause,
        )
        if typed != code:
            self.save_code(user_id, step_id, typed)
        return CellRun(step_id=step_id, result=result, check=check)

    @contextlib.contextmanager
    def _running(self, user_id: int) -> Iterator[None]:
        with self._running_lock:
            self._running_since[user_id] = time.time()
        try:
            yield
        finally:
            with self._running_lock:
                self._running_since.pop(user_id, None)

    def run_all_above(self, user_id: int, step_id: str) -> list[CellRun]:
        """Run every cell before ``step_id`` in order (rebuilds state after a restart).

        Stops at the first cell that fails, as Jupyter's "run all" does.
        """
        runs: list[CellRun] = []
        for step in self.steps():
            if step.id == step_id:
                break
            run = self.run_step(user_id, step.id)
            runs.append(run)
            if run.result.status != "ok":
                break
        return runs

    def warm_kernel(self, user_id: int) -> None:
        """Get the student's kernel ready before they press Run; returns at once.

        Pages call it when a student signs in or opens the notebook: in the background a
        spare is adopted, or a kernel started and warmed up (``KernelPool.warm``). Does
        nothing when ``settings.preload`` is off (page tests start no kernels).
        """
        if not self.settings.preload:
            return
        if self._kernels is not None:
            self._kernels.warm(str(user_id))
        else:  # building the pool may take a while: not in the page's thread
            threading.Thread(target=self._warm_later, args=(user_id,), daemon=True).start()

    def _warm_later(self, user_id: int) -> None:
        try:
            self.kernels.warm(str(user_id))
        except (KernelError, WorkbookError) as exc:  # the student's Run shows the reason
            log.warning("could not get a kernel ready: %s", exc)

    def restart_kernel(self, user_id: int) -> None:
        """Restart the student's kernel (all variables are lost; saved code is kept)."""
        try:
            self.kernels.restart(str(user_id))
        except KernelError as exc:
            raise WorkbookError(str(exc)) from exc

    def run_state(self, user_id: int) -> RunState:
        """Whether the student's cell is waiting in line, running, or neither (for the page).

        The page polls this to show a running cell's elapsed time and its place in line:
        in the run queue, or in the line for a kernel when every kernel that memory allows
        is taken. A run that is still getting its kernel (a start, or another tab's cell
        holding it) counts as running from the moment it was asked for.
        """
        ticket, position = self.run_queue.standing(user_id)  # both at one moment
        if ticket is None:
            with self._running_lock:
                since = self._running_since.get(user_id)
            if since is None:
                return RunState(state="idle", position=None, since=None)
            place = self._kernels.place_in_line(str(user_id)) if self._kernels else None
            if place is not None:  # every kernel memory allows is taken: waiting for one
                return RunState(state="waiting_for_kernel", position=place, since=since)
            return RunState(state="running", position=0, since=since)
        return RunState(
            state="running" if ticket.running else "queued", position=position, since=ticket.since
        )

    @contextlib.contextmanager
    def _admitted(self, user_id: int) -> Iterator[Any]:
        """The student's kernel, held for one run, once the run queue lets it in.

        The kernel's lock is taken first: a student's second tab waits for the first
        without holding a slot of the queue. Inside the slot, torch in the kernel gets its
        share of the cores (``workbook.kernels.threads``).
        """
        from workbook.kernels import threads

        uid = str(user_id)
        while True:
            kernel = self.kernels.kernel_for(uid)
            with kernel.lock:
                if self.kernels.current(uid) is not kernel:
                    continue  # restarted with a spare or culled while we waited: ask again
                with self.run_queue.slot(uid):
                    try:
                        threads.grant(kernel, threads.share(self.run_queue.running()))
                    except KernelError as exc:  # only a speed-up: the cell still runs
                        log.warning("could not set the kernel's threads: %s", exc)
                    yield kernel
                return


@dataclass(frozen=True)
class Progress:
    """A student's progress at a glance."""

    steps_passed: int
    steps_total: int
    reflections: int
    answers: int
    answers_total: int


@dataclass(frozen=True)
class CellRun:
    """One run of a notebook cell: what the kernel produced and what the check said."""

    step_id: str
    result: Any  # workbook.kernels.result.ExecutionResult
    check: Any | None  # workbook.exercise.checks.CheckResult
