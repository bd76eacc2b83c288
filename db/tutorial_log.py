"""The tutorial log: chosen path, tutorial entries per slot and the mini-project
(with uploads), append-only. Mixed into ``Store``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlite_utils import Database

from db import validation as check
from db.common import _dt, _latest_revision, _latest_revisions, _now, _revision_history, _ts
from db.errors import ValidationError
from db.models import TUTORIAL_PATHS, ProjectEntry, TutorialEntry, TutorialLog


class TutorialLogMixin:
    """Tutorial log and mini-project of the ``Store``; every save appends a revision.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``
    and ``_one``.
    """

    # ------------------------------------------------------------------ tutorial log

    def set_tutorial_path(self, user_id: int, path: str) -> None:
        """Record which path the student chose: ``"tutorials"`` or ``"project"``.

        Entries of the other path are kept.

        Raises:
            ValidationError: unknown path.
            NotFoundError: no such user.
        """
        check.choice("path", path, TUTORIAL_PATHS)
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT path FROM tutorial_path_revisions WHERE user_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            if latest is None or latest["path"] != path:
                db.execute(
                    "INSERT INTO tutorial_path_revisions (user_id, path, created_at)"
                    " VALUES (?, ?, ?)",
                    [user_id, path, _ts(_now())],
                )

    @staticmethod
    def _tutorial(row: dict[str, Any]) -> TutorialEntry:
        return TutorialEntry(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            slot=row["slot"],
            category=row["category"],
            title=row["title"],
            url=row["url"],
            from_catalog=bool(row["from_catalog"]),
            dates=tuple(json.loads(row["dates"])),
            minutes=row["minutes"],
            notes=row["notes"],
            reflection=row["reflection"],
        )

    def log_tutorial(
        self,
        user_id: int,
        slot: str,
        *,
        category: str = "",
        title: str = "",
        url: str = "",
        from_catalog: bool = False,
        dates: Sequence[str | date] = (),
        minutes: int | None = None,
        notes: str = "",
        reflection: str = "",
    ) -> TutorialEntry:
        """Append a revision of one tutorial-log entry (the whole entry, every field).

        Identical to the latest revision of the slot: nothing is appended.

        Args:
            slot: ``"1"`` or ``"2"`` (the store's ``slots``).
            category, title: at most 200 characters each.
            url: empty or an http(s) URL.
            from_catalog: the tutorial was picked from the catalog.
            dates: the day(s) worked, ``date`` objects or ``YYYY-MM-DD`` text.
            minutes: time spent, 0-100,000, or ``None``.
            notes, reflection: up to 20,000 characters each, stored exactly as typed.

        Raises:
            ValidationError: a field breaks its limit, or the slot is unknown.
            NotFoundError: no such user.
        """
        slot = check.choice("slot", slot, self.slots)
        values = {
            "category": check.text("category", category, check.MAX_NAME),
            "title": check.text("title", title, check.MAX_NAME),
            "url": check.url("url", url),
            "from_catalog": int(bool(from_catalog)),
            "dates": json.dumps(list(check.dates("dates", dates))),
            "minutes": check.optional_int("minutes", minutes, 0, check.MAX_MINUTES),
            "notes": check.text("notes", notes),
            "reflection": check.text("reflection", reflection),
        }
        with self._write() as db:
            self._require_user(db, user_id)
            latest = _latest_revision(db, "tutorial_revisions", "slot", user_id, slot)
            if latest is not None and all(latest[k] == v for k, v in values.items()):
                return self._tutorial(latest)
            cursor = db.execute(
                "INSERT INTO tutorial_revisions (user_id, slot, category, title, url,"
                " from_catalog, dates, minutes, notes, reflection, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [user_id, slot, *values.values(), _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM tutorial_revisions WHERE id = ?", [cursor.lastrowid])
        return self._tutorial(row)

    def tutorial_history(self, user_id: int, slot: str) -> list[TutorialEntry]:
        """Every revision of one tutorial-log slot, oldest first.

        Raises:
            ValidationError: unknown slot.
        """
        check.choice("slot", slot, self.slots)
        rows = _revision_history(self._db(), "tutorial_revisions", "slot", user_id, slot)
        return [self._tutorial(row) for row in rows]

    _PROJECT_SELECT = (
        "SELECT p.*, u.content AS notebook_bytes, u.sha256 AS notebook_sha256"
        " FROM project_revisions p LEFT JOIN uploads u ON u.id = p.upload_id"
    )

    @staticmethod
    def _project(row: dict[str, Any]) -> ProjectEntry:
        return ProjectEntry(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            description=row["description"],
            link=row["link"],
            notebook_name=row["notebook_name"],
            notebook_bytes=row["notebook_bytes"],
            notebook_sha256=row["notebook_sha256"],
            reflection=row["reflection"],
        )

    def log_project(
        self,
        user_id: int,
        *,
        description: str = "",
        link: str = "",
        notebook_name: str | None = None,
        notebook_bytes: bytes | None = None,
        reflection: str = "",
    ) -> ProjectEntry:
        """Append a revision of the mini-project entry.

        ``notebook_bytes=None`` keeps the latest revision's notebook (so autosaving the
        text does not drop an upload); ``b""`` removes it from the new revision (older
        revisions keep it). Uploads are stored once per content hash.

        Args:
            description, reflection: up to 20,000 characters each.
            link: empty or an http(s) URL.
            notebook_name: file name of the upload, at most 200 characters.
            notebook_bytes: the uploaded notebook, at most 20 MiB.

        Raises:
            ValidationError: a field breaks its limit.
            NotFoundError: no such user.
        """
        description = check.text("description", description)
        link = check.url("link", link)
        reflection = check.text("reflection", reflection)
        if notebook_name is not None:
            notebook_name = check.text("notebook_name", notebook_name, check.MAX_NAME) or None
        if notebook_bytes is not None:
            if not isinstance(notebook_bytes, (bytes, bytearray, memoryview)):
                raise ValidationError("notebook_bytes", "notebook_bytes must be bytes")
            notebook_bytes = bytes(notebook_bytes)
            if len(notebook_bytes) > check.MAX_UPLOAD_BYTES:
                raise ValidationError(
                    "notebook_bytes",
                    f"the notebook is larger than {check.MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
                    limit=check.MAX_UPLOAD_BYTES,
                )
        with self._write() as db:
            self._require_user(db, user_id)
            latest = self._one(
                db,
                "SELECT * FROM project_revisions WHERE user_id = ? ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            if notebook_bytes is None:
                upload_id = latest["upload_id"] if latest else None
                if notebook_name is None and latest is not None:
                    notebook_name = latest["notebook_name"]
            elif notebook_bytes == b"":
                upload_id, notebook_name = None, None
            else:
                upload_id = self._upload(db, notebook_bytes)
            values = {
                "description": description,
                "link": link,
                "notebook_name": notebook_name,
                "upload_id": upload_id,
                "reflection": reflection,
            }
            if latest is None or any(latest[k] != v for k, v in values.items()):
                cursor = db.execute(
                    "INSERT INTO project_revisions (user_id, description, link, notebook_name,"
                    " upload_id, reflection, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [user_id, *values.values(), _ts(_now())],
                )
                revision_id = cursor.lastrowid
            else:
                revision_id = latest["id"]
            row = self._one(db, self._PROJECT_SELECT + " WHERE p.id = ?", [revision_id])
        return self._project(row)

    def _upload(self, db: Database, content: bytes) -> int:
        digest = hashlib.sha256(content).hexdigest()
        row = self._one(db, "SELECT id FROM uploads WHERE sha256 = ?", [digest])
        if row is not None:
            return row["id"]
        cursor = db.execute(
            "INSERT INTO uploads (sha256, content, created_at) VALUES (?, ?, ?)",
            [digest, content, _ts(_now())],
        )
        return cursor.lastrowid

    def project_history(self, user_id: int) -> list[ProjectEntry]:
        """Every revision of the mini-project entry, oldest first."""
        rows = self._db().query(
            self._PROJECT_SELECT + " WHERE p.user_id = ? ORDER BY p.id", [user_id]
        )
        return [self._project(row) for row in rows]

    def tutorial_log(self, user_id: int) -> TutorialLog:
        """The chosen path, the latest entry per slot and the latest project entry."""
        with self._read() as db:
            path_row = self._one(
                db,
                "SELECT path FROM tutorial_path_revisions WHERE user_id = ?"
                " ORDER BY id DESC LIMIT 1",
                [user_id],
            )
            rows = _latest_revisions(db, "tutorial_revisions", "slot", user_id)
            found = {row["slot"]: self._tutorial(row) for row in rows}
            project_row = self._one(
                db,
                self._PROJECT_SELECT + " WHERE p.user_id = ? ORDER BY p.id DESC LIMIT 1",
                [user_id],
            )
        return TutorialLog(
            user_id=user_id,
            path=path_row["path"] if path_row else None,
            entries={slot: found[slot] for slot in self.slots if slot in found},
            project=self._project(project_row) if project_row else None,
        )
