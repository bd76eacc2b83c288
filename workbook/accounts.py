"""Accounts and sign-in, as the facade offers them: one part of ``Workbook``.

``Workbook`` (``workbook/service.py``) is built from this mixin and keeps the names pages
call (``wb.sign_in``, ``wb.session_user`` ...). It holds who someone is and how a browser
stays signed in: registering, checking a password (throttled), trusting a browser, and the
remembered sessions a cookie carries. Nothing here touches kernels, the model or grades.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from db import AuthenticationError, DbError, NotFoundError, ThrottledError, User
from workbook.errors import SignInThrottled, WorkbookError, wait_words

if TYPE_CHECKING:
    from db import Store
    from workbook.config import Settings

__all__ = ["Accounts"]


class Accounts:
    """Sign-up, sign-in and remembered sessions of the ``Workbook`` facade.

    A mixin: the class that uses it provides ``store`` (the ``db.Store``) and ``settings``.
    """

    store: Store
    settings: Settings

    def user(self, user_id: int) -> User:
        """The account with this id.

        Raises:
            WorkbookError: the account no longer exists.
        """
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

    def sign_in(
        self, email: str, password: str, *, client: str = "", browser: str | None = None
    ) -> User:
        """Check a password; repeated failures are slowed down (``db.SignInPolicy``).

        Args:
            email: the account's email.
            password: the password typed.
            client: where the attempt comes from (the connection's IP address; empty when
                unknown). Failures are counted per (email, client).
            browser: this browser's sign-in token (an HttpOnly cookie), if it has one. A
                browser that signed in to the account before is not held back by failures
                from elsewhere; after a success the token is trusted for the account.

        Raises:
            SignInThrottled: too many recent failures; the message says how long to wait.
            WorkbookError: wrong email or password.
        """
        try:
            user = self.store.authenticate(email, password, client=client, browser=browser)
        except ThrottledError as exc:
            raise SignInThrottled(
                "Too many failed sign-ins for this account. "
                f"Try again in {wait_words(exc.retry_after_s)}.",
                retry_after_s=exc.retry_after_s,
            ) from exc
        except AuthenticationError as exc:
            raise WorkbookError("Wrong email or password.") from exc
        self.store.confirm_lti_links(user.id)  # the password proves a pending Moodle link
        return user

    def trust_browser(self, user_id: int, browser: str) -> None:
        """Trust this browser's token for the user (after registering in it)."""
        try:
            self.store.trust_browser(user_id, browser)
        except NotFoundError as exc:
            raise WorkbookError("That account no longer exists.") from exc

    @staticmethod
    def new_browser_token() -> str:
        """A fresh random token for a browser that has none yet (see ``sign_in``)."""
        return secrets.token_urlsafe(32)

    # --- remembered sign-ins (a browser cookie holds the token) -------------------------
    def start_session(self, user_id: int) -> str:
        """A new sign-in token for the browser to keep across reloads."""
        return self.store.start_session(user_id)

    def session_user(self, token: str) -> User | None:
        """The user a browser's token belongs to, or None (unknown, expired or archived)."""
        try:
            return self.store.session_user(token, idle_seconds=self.settings.session_idle_min * 60)
        except NotFoundError:
            return None

    def end_session(self, token: str) -> None:
        """Sign out: the token no longer signs anyone in."""
        self.store.end_session(token)
