"""The facade the pages call: ties settings, storage, the engine and kernels together.

One ``Workbook`` lives per app process (cached by ``pages/common.py``) and is shared by every
session and thread, so it holds no per-user state: the store opens a connection per thread,
the engine is read-only at inference, and the kernel pool locks per student.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING

from db import AuthenticationError, DbError, NotFoundError, Store, User
from workbook.config import Settings
from workbook.errors import SignInThrottled, WorkbookError

if TYPE_CHECKING:
    from lm_engine import LanguageModel
    from workbook.kernel import KernelPool

__all__ = ["User", "Workbook", "WorkbookError"]

# Failed sign-ins for one email within this window slow the next attempt down.
THROTTLE_WINDOW_S = 300
THROTTLE_FREE_ATTEMPTS = 3


class Workbook:
    """App-wide services; cheap to build (everything heavy is created on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    # --- the parts -------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        """The SQLite store (created and migrated on first use)."""
        from workbook import exercises

        self.settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        return Store(
            self.settings.db_path,
            question_ids=exercises.question_ids(),
            step_ids=exercises.step_ids(),
        )

    def engine(self) -> LanguageModel:
        """The course's model, loaded once per process (lm_engine caches it)."""
        from lm_engine import LMEngineError, load_model

        try:
            return load_model(self.settings.model_name)
        except LMEngineError as exc:
            raise WorkbookError(str(exc)) from exc

    @cached_property
    def kernels(self) -> KernelPool:
        """One Jupyter kernel per signed-in student, started on demand."""
        from workbook.kernel import KernelPool

        return KernelPool(self.settings)

    # --- accounts --------------------------------------------------------------------
    def user(self, user_id: int) -> User:
        try:
            return self.store.user(user_id)
        except NotFoundError as exc:
            raise WorkbookError("That account no longer exists.") from exc

    def register(self, name: str, email: str, password: str) -> User:
        """Create a student account; the message says what is wrong with the input."""
        if len(password) < 8:
            raise WorkbookError("Choose a password of at least 8 characters.")
        try:
            return self.store.create_user(email=email, name=name, password=password)
        except DbError as exc:
            raise WorkbookError(str(exc)) from exc

    def sign_in(self, email: str, password: str) -> User:
        """Check a password; repeated failures for one email are slowed down."""
        failures = self.store.failed_logins_since(email, THROTTLE_WINDOW_S)
        if failures >= THROTTLE_FREE_ATTEMPTS:
            # Each extra failure doubles the wait, capped, so guessing gets slow fast.
            delay = min(2 ** (failures - THROTTLE_FREE_ATTEMPTS), 30)
            if failures >= THROTTLE_FREE_ATTEMPTS + 6:
                raise SignInThrottled(
                    "Too many failed sign-ins for this email. Wait five minutes and try again."
                )
            time.sleep(delay)
        try:
            user = self.store.authenticate(email, password)
        except AuthenticationError as exc:
            raise WorkbookError("Wrong email or password.") from exc
        self.store.touch_user(user.id)
        return user
