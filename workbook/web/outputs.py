"""Helpers for nbformat output dicts: plain-text tracebacks and a compact text summary."""

from __future__ import annotations

import re

# A CSI escape: colours (``\x1b[31m``) and private modes such as ``\x1b[?25l``.
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


def joined_text(value: object) -> str:
    """An output's text, whatever shape student code gave it.

    nbformat allows a multi-line string as a list of lines: they are joined. Anything else
    a student's output may hold is shown as its ``repr``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return repr(value)
