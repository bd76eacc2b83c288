"""The named exceptions of the storage layer.

Pages catch these and show a plain message; ``str(error)`` is written for a person.
"""

from __future__ import annotations


class DbError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFoundError(DbError):
    """The user, answer, cell or feedback asked for does not exist."""


class ValidationError(DbError, ValueError):
    """Input the store refuses: too long, malformed or unknown.

    Attributes:
        field: the name of the offending field, e.g. ``"text"`` or ``"email"``.
        limit: the limit that was exceeded (a number or the allowed values), if any.
    """

    def __init__(self, field: str, message: str, *, limit: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


class AuthenticationError(DbError):
    """Wrong email or password, or the account is archived.

    The message never says which of email or password was wrong.
    """


class ThrottledError(DbError):
    """Too many failed sign-ins: this attempt was refused without checking the password.

    Attributes:
        retry_after_s: whole seconds to wait before the next attempt can be checked.
    """

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConflictError(DbError):
    """The change would break the store's promises (e.g. deleting a user who has work,
    or creating a second account with the same email)."""


class PermissionDeniedError(DbError):
    """The acting user's role does not allow the operation (e.g. a TA archiving a user)."""
