"""The workbook's own errors, and the set of errors a page may show to its user as text."""

from __future__ import annotations


class WorkbookError(Exception):
    """Something the user can act on; the message says what to do next."""


class SignInThrottled(WorkbookError):
    """Too many failed sign-ins for one email in a short time."""
