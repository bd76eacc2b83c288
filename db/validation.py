"""Input limits and checks. Each failure is a ``ValidationError`` naming field and limit."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from db.errors import ValidationError

MAX_TEXT = 20_000  # answers, reflections, notes, comments
MAX_NAME = 200  # display names, titles, categories, file names, keys
MAX_EMAIL = 254
MAX_URL = 2_000
MAX_CODE = 200_000
MAX_OUTPUTS_BYTES = 20 * 1024 * 1024  # images in outputs are base64 PNGs
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PASSWORD = 1_024
MAX_MINUTES = 100_000
MAX_DATES = 366

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def text(field: str, value: object, limit: int = MAX_TEXT, *, allow_empty: bool = True) -> str:
    """Check a free-text value and return it unchanged (stored exactly as typed)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise ValidationError(
            field,
            f"{field} is {len(value):,} characters long; the limit is {limit:,}",
            limit=limit,
        )
    if not allow_empty and not value.strip():
        raise ValidationError(field, f"{field} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be stored in SQLite's UTF-8 text; refuse clearly.
        raise ValidationError(
            field, f"{field} contains characters that are not valid text"
        ) from None
    return value


def name(field: str, value: object) -> str:
    """A display name or title: stripped, non-empty, at most ``MAX_NAME`` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be text, got {type(value).__name__}")
    return text(field, value.strip(), MAX_NAME, allow_empty=False)


def email(value: object) -> str:
    """Return the email stripped and lower-cased, or raise."""
    if not isinstance(value, str):
        raise ValidationError("email", "email must be text")
    cleaned = value.strip().lower()
    if len(cleaned) > MAX_EMAIL:
        raise ValidationError(
            "email", f"email is longer than {MAX_EMAIL} characters", limit=MAX_EMAIL
        )
    if not _EMAIL.match(cleaned):
        raise ValidationError("email", f"{value!r} is not a valid email address")
    return cleaned


def choice(field: str, value: object, allowed: Iterable[str]) -> str:
    """``value`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValidationError(
            field, f"unknown {field} {value!r}; expected one of {', '.join(allowed)}", limit=allowed
        )
    return value  # type: ignore[return-value]


def url(field: str, value: object) -> str:
    """Empty, or an http(s) URL of at most ``MAX_URL`` characters."""
    value = text(field, value, MAX_URL).strip()
    if value and not re.match(r"^https?://\S+$", value):
        raise ValidationError(field, f"{field} must start with http:// or https://")
    return value


def optional_int(field: str, value: object, low: int, high: int) -> int | None:
    """``None`` or a whole number in ``[low, high]``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"{field} must be a whole number")
    if not low <= value <= high:
        raise ValidationError(
            field, f"{field} must be between {low} and {high}, got {value}", limit=high
        )
    return value


def dates(field: str, values: object) -> tuple[str, ...]:
    """A sequence of dates (``date`` or ``YYYY-MM-DD`` text), returned as ISO strings."""
    if isinstance(values, (str, date)):
        values = [values]
    if not isinstance(values, Iterable):
        raise ValidationError(field, f"{field} must be a list of dates")
    out = []
    for item in values:
        if isinstance(item, date):
            out.append(item.isoformat()[:10])
            continue
        try:
            out.append(date.fromisoformat(str(item).strip()).isoformat())
        except ValueError:
            raise ValidationError(
                field, f"{item!r} in {field} is not a date (YYYY-MM-DD)"
            ) from None
    if len(out) > MAX_DATES:
        raise ValidationError(field, f"{field} holds more than {MAX_DATES} dates", limit=MAX_DATES)
    return tuple(out)


def outputs(value: object) -> str:
    """nbformat output dicts, returned as JSON text."""
    if value is None:
        return "[]"
    if not isinstance(value, list) or not all(isinstance(o, dict) for o in value):
        raise ValidationError("outputs", "outputs must be a list of nbformat output dicts")
    try:
        encoded = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValidationError("outputs", f"outputs are not JSON-serialisable: {error}") from None
    if len(encoded.encode("utf-8")) > MAX_OUTPUTS_BYTES:
        raise ValidationError(
            "outputs",
            f"outputs are larger than {MAX_OUTPUTS_BYTES // (1024 * 1024)} MiB",
            limit=MAX_OUTPUTS_BYTES,
        )
    return encoded


def grade(value: object) -> float | None:
    """``None`` or a finite, non-negative number (text like ``"8.5"`` is accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationError("grade", "grade must be a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError("grade", f"grade must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValidationError("grade", f"grade must be a non-negative number, got {value!r}")
    return number


def sha256(value: object) -> str:
    """64 lower-case hex digits."""
    if not isinstance(value, str) or not _SHA256.match(value.strip().lower()):
        raise ValidationError("sha256", "sha256 must be 64 hexadecimal digits")
    return value.strip().lower()


def json_value(field: str, value: Any) -> str:
    """A JSON-serialisable setting value, returned encoded."""
    try:
        encoded = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        raise ValidationError(
            field, f"{field} must be text, a number, a boolean or a list/dict of those"
        ) from None
    return text(field, encoded, MAX_TEXT)
