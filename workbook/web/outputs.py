"""Helpers for nbformat output dicts: plain-text tracebacks and a compact text summary."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def traceback_text(output: dict) -> str:
    """The readable traceback of an ``error`` output, without colour codes."""
    lines = output.get("traceback") or [
        f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    ]
    return strip_ansi("\n".join(lines))


def joined_text(value: str | list[str]) -> str:
    """nbformat allows multi-line strings as a list of lines; join them."""
    return value if isinstance(value, str) else "".join(value)
