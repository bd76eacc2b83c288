"""The bundle: the zip a student downloads, with the notebook, the online text and a how-to.

A student submits two things in Moodle: the notebook ``u9n1-lm-logits.ipynb`` as a file, and
the Analysis answers pasted into the online-text box. ``build_bundle`` packs both, plus a
how-to, in one reproducible zip; ``export_for`` gathers and builds one export. Recording an export
is the facade's (``Workbook.export_bundle``, ``Workbook.lti.record_export``): it also tells
Moodle the homework is handed in, which this package cannot (it does not import ``lti``).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbook.submission.notebook import (
    VOLATILE_METADATA,
    build_notebook,
    notebook_bytes,
    validate_notebook,
)
from workbook.submission.online_text import moodle_html, moodle_text
from workbook.submission.snapshot import Submission, gather_submission

if TYPE_CHECKING:
    from db import Store

__all__ = [
    "BUNDLE_FILES",
    "HOWTO_NAME",
    "HTML_NAME",
    "NOTEBOOK_NAME",
    "TEXT_NAME",
    "Bundle",
    "build_bundle",
    "bundle_file_name",
    "canonical_notebook",
    "export_for",
    "how_to_submit",
    "safe_file_name",
]

# The file name the course asks for; Moodle submissions are matched by it.
NOTEBOOK_NAME = "u9n1-lm-logits.ipynb"
HTML_NAME = "moodle-text.html"
TEXT_NAME = "moodle-text.txt"
HOWTO_NAME = "HOW-TO-SUBMIT.txt"
BUNDLE_FILES = (NOTEBOOK_NAME, HTML_NAME, TEXT_NAME, HOWTO_NAME)


def how_to_submit(submission: Submission, notebook_sha256: str) -> str:
    """The instructions that travel in the zip."""
    return f"""\
How to submit "{submission.title}" on Moodle
{"=" * 60}

Student: {submission.student_name}
Model:   {submission.model_name}

1. Open the course's Moodle assignment and click "Add submission".
2. File submission: attach {NOTEBOOK_NAME} from this zip (unzip it first; do not rename it).
3. Online text: open {HTML_NAME} from this zip in a text editor and copy all of it. In
   Moodle's online-text editor, switch to the HTML/source view (the "</>" or "HTML" button),
   paste, and switch back: the questions and your answers appear formatted.
   If your editor has no HTML view, paste the contents of {TEXT_NAME} instead.
4. Check that the preview shows every question followed by your answer, then save and
   submit.

The notebook's SHA-256 is
    {notebook_sha256}
The workbook recorded it when you exported, so your TA can match the file you submit with
the work saved in the workbook.
"""


_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{name}{i}" for name in ("COM", "LPT") for i in range(1, 10)
}
_UNSAFE_CHARS = re.compile(r'[/\\:*?"<>|\x00]+')
_SPACES = re.compile(r"\s+")
_DASHES = re.compile(r"-{2,}")


def safe_file_name(name: str, *, fallback: str = "student", max_length: int = 80) -> str:
    """A file-name-safe version of a person's name, readable in any language.

    Path separators and characters Windows forbids become ``-``, control and other
    invisible characters are dropped, whitespace becomes ``-``, and letters of every script
    are kept as they are (NFC-normalised). Never empty, never ``.``/``..``, never a reserved
    Windows device name.
    """
    text = unicodedata.normalize("NFC", name or "")
    # Category C* = control, format (zero-width, bidi overrides), unassigned, private use.
    text = "".join(
        ch for ch in text if not unicodedata.category(ch).startswith("C") or ch in "\t\n"
    )
    text = _UNSAFE_CHARS.sub("-", text)
    text = _SPACES.sub("-", text.strip())
    text = _DASHES.sub("-", text).strip("-. ")
    text = text[:max_length].rstrip("-. ")
    if not text or text.upper().split(".")[0] in _WINDOWS_RESERVED:
        text = f"{fallback}-{text}" if text else fallback
    return text


def bundle_file_name(student_name: str) -> str:
    """The zip's name, e.g. ``u9n1-lm-logits-Ana-Núñez.zip``."""
    return f"u9n1-lm-logits-{safe_file_name(student_name)}.zip"


@dataclass(frozen=True)
class Bundle:
    """One built export.

    Attributes:
        file_name: the zip's file name.
        data: the zip's bytes.
        sha256: hex SHA-256 of ``data``.
        notebook: the notebook's bytes (``u9n1-lm-logits.ipynb``).
        notebook_sha256: hex SHA-256 of ``notebook``: what the store records, because the
            notebook, not the zip, is the file a TA finds on Moodle.
        html: the online text as HTML.
        text: the online text as plain text.
    """

    file_name: str
    data: bytes
    sha256: str
    notebook: bytes
    notebook_sha256: str
    html: str
    text: str


def build_bundle(submission: Submission, *, built_at: datetime | None = None) -> Bundle:
    """Build and validate the notebook, the texts and the zip.

    Raises:
        ExportError: the notebook would not validate.
    """
    built_at = (built_at or datetime.now(UTC)).astimezone(UTC)
    nb = build_notebook(submission, built_at=built_at)
    validate_notebook(nb)
    nb_bytes = notebook_bytes(nb)
    nb_sha = hashlib.sha256(nb_bytes).hexdigest()
    page_html = moodle_html(submission)
    page_text = moodle_text(submission)
    files = {
        NOTEBOOK_NAME: nb_bytes,
        HTML_NAME: _html_document(submission, page_html).encode("utf-8"),
        TEXT_NAME: page_text.encode("utf-8"),
        HOWTO_NAME: how_to_submit(submission, nb_sha).encode("utf-8"),
    }
    buffer = io.BytesIO()
    # Fixed entry times (the build time) and order keep the zip reproducible.
    stamp = built_at.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in BUNDLE_FILES:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    data = buffer.getvalue()
    return Bundle(
        file_name=bundle_file_name(submission.student_name),
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        notebook=nb_bytes,
        notebook_sha256=nb_sha,
        html=page_html,
        text=page_text,
    )


def _html_document(submission: Submission, body: str) -> str:
    """The HTML fragment wrapped as a file a browser opens with the right encoding.

    What to paste into Moodle is only the part between the ``BEGIN``/``END`` comments.
    """
    title = html.escape(f"{submission.title} — {submission.student_name}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body>\n"
        "<!-- BEGIN: paste from here into Moodle's online text (HTML view) -->\n"
        f"{body}"
        "<!-- END -->\n</body>\n</html>\n"
    )


def export_for(
    store: Store, user_id: int, *, model_name: str, built_at: datetime | None = None
) -> Bundle:
    """Gather and build one export; nothing is recorded.

    A student's export is recorded only through the facade (``Workbook.export_bundle``, or
    ``Workbook.lti.record_export`` after a download), which also queues Moodle's
    "submitted": recorded here, the export would count as handed in without Moodle hearing.

    Raises:
        ExportError: the account is gone or the notebook would not validate.
    """
    submission = gather_submission(store, user_id, model_name=model_name)
    return build_bundle(submission, built_at=built_at)


def canonical_notebook(data: bytes | str) -> dict[str, Any]:
    """A notebook's JSON with the volatile metadata removed (for comparisons and goldens)."""
    nb = json.loads(data)
    meta = nb.get("metadata", {}).get("workbook", {})
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    return nb
