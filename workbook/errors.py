"""The workbook's own errors, and the set of errors a page may show to its user as text."""

from __future__ import annotations


class WorkbookError(Exception):
    """Something the user can act on; the message says what to do next."""


class SignInThrottled(WorkbookError):
    """Too many failed sign-ins for one email in a short time; the password was not checked.

    Attributes:
        retry_after_s: whole seconds until the next attempt will be checked.
    """

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def wait_words(seconds: int) -> str:
    """``45`` -> "45 seconds", ``90`` -> "2 minutes" (rounded up: never shorter than needed).

    The wording of :class:`SignInThrottled`'s wait.
    """
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
