"""What TAs work with: feedback versions, reusable snippets, export records, the roster.
Mixed into ``Store``.
"""

from __future__ import annotations

import json
from typing import Any

from db import validation as check
from db.common import _dt, _now, _ts
from db.errors import NotFoundError, ValidationError
from db.models import ExportRecord, Feedback, RosterRow, Snippet


class GradingMixin:
    """Feedback, snippets, exports and roster of the ``Store``.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``
    and ``_one``.
    """

    # ------------------------------------------------------------------ feedback

    @staticmethod
    def _feedback(row: dict[str, Any]) -> Feedback:
        return Feedback(
            id=row["id"],
            student_id=row["student_id"],
            grader_id=row["grader_id"],
            grade=row["grade"],
            comment=row["comment"],
            item_comments=json.loads(row["item_comments"]),
            released=bool(row["released"]),
            created_at=_dt(row["created_at"]),
        )

    def save_feedback(
        self,
        student_id: int,
        grader_id: int,
        *,
        grade: float | str | None = None,
        comment: str = "",
        item_comments: dict[str, str] | None = None,
        released: bool = False,
    ) -> Feedback:
        """Append a version of a student's feedback (drafts and releases are both kept).

        Args:
            student_id: the student (role ``student``).
            grader_id: a TA or instructor.
            grade: a non-negative number (or numeric text), or ``None``.
            comment: overall comment, up to 20,000 characters.
            item_comments: item (step id, question id, ``"tutorial1"`` ...) -> comment.
            released: the student may see this version.

        Raises:
            ValidationError: bad grade, comment too long, wrong roles.
            NotFoundError: no such student or grader.
        """
        grade_value = check.grade(grade)
        check.text("comment", comment)
        items = dict(item_comments or {})
        for key, value in items.items():
            check.text("item_comments key", key, check.MAX_NAME, allow_empty=False)
            check.text(f"item_comments[{key!r}]", value)
        with self._write() as db:
            student = self._require_user(db, student_id, "student_id")
            grader = self._require_user(db, grader_id, "grader_id")
            if student["role"] != "student":
                raise ValidationError("student_id", "feedback can only be given to a student")
            if grader["role"] not in ("ta", "instructor"):
                raise ValidationError("grader_id", "only a TA or instructor can give feedback")
            cursor = db.execute(
                "INSERT INTO feedback (student_id, grader_id, grade, comment, item_comments,"
                " released, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    student_id,
                    grader_id,
                    grade_value,
                    comment,
                    json.dumps(items, ensure_ascii=False),
                    int(bool(released)),
                    _ts(_now()),
                ],
            )
            row = self._one(db, "SELECT * FROM feedback WHERE id = ?", [cursor.lastrowid])
        return self._feedback(row)

    def feedback_for(self, student_id: int) -> Feedback:
        """The latest feedback version, draft or released (for graders).

        Raises:
            NotFoundError: none saved yet.
        """
        row = self._one(
            self._db(),
            "SELECT * FROM feedback WHERE student_id = ? ORDER BY id DESC LIMIT 1",
            [student_id],
        )
        if row is None:
            raise NotFoundError("no feedback saved for this student yet")
        return self._feedback(row)

    def released_feedback_for(self, student_id: int) -> Feedback:
        """The latest released feedback (what the student sees).

        Raises:
            NotFoundError: nothing released yet.
        """
        row = self._one(
            self._db(),
            "SELECT * FROM feedback WHERE student_id = ? AND released = 1 ORDER BY id DESC LIMIT 1",
            [student_id],
        )
        if row is None:
            raise NotFoundError("no feedback has been released to this student yet")
        return self._feedback(row)

    def feedback_history(self, student_id: int) -> list[Feedback]:
        """Every saved feedback version for a student, oldest first."""
        rows = self._db().query(
            "SELECT * FROM feedback WHERE student_id = ? ORDER BY id", [student_id]
        )
        return [self._feedback(row) for row in rows]

    def add_snippet(self, text: str, author_id: int) -> Snippet:
        """Save a reusable feedback comment.

        Raises:
            ValidationError: empty or over 20,000 characters.
            NotFoundError: no such author.
        """
        check.text("text", text, allow_empty=False)
        with self._write() as db:
            self._require_user(db, author_id, "author_id")
            cursor = db.execute(
                "INSERT INTO snippets (text, author_id, created_at) VALUES (?, ?, ?)",
                [text, author_id, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM snippets WHERE id = ?", [cursor.lastrowid])
        return Snippet(row["id"], row["text"], row["author_id"], _dt(row["created_at"]))

    def snippets(self) -> list[Snippet]:
        """Every saved snippet, oldest first."""
        rows = self._db().query("SELECT * FROM snippets ORDER BY id")
        return [Snippet(r["id"], r["text"], r["author_id"], _dt(r["created_at"])) for r in rows]

    # ------------------------------------------------------------------ exports

    def record_export(self, user_id: int, file_name: str, sha256: str) -> ExportRecord:
        """Record that a submission bundle was exported.

        Raises:
            ValidationError: bad file name or sha256.
            NotFoundError: no such user.
        """
        file_name = check.name("file_name", file_name)
        digest = check.sha256(sha256)
        with self._write() as db:
            self._require_user(db, user_id)
            cursor = db.execute(
                "INSERT INTO exports (user_id, file_name, sha256, created_at) VALUES (?, ?, ?, ?)",
                [user_id, file_name, digest, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM exports WHERE id = ?", [cursor.lastrowid])
        return self._export(row)

    @staticmethod
    def _export(row: dict[str, Any]) -> ExportRecord:
        return ExportRecord(
            row["id"], row["user_id"], row["file_name"], row["sha256"], _dt(row["created_at"])
        )

    def exports_for(self, user_id: int) -> list[ExportRecord]:
        """Every export of a student, oldest first."""
        rows = self._db().query("SELECT * FROM exports WHERE user_id = ? ORDER BY id", [user_id])
        return [self._export(row) for row in rows]

    # ------------------------------------------------------------------ scope

    # interim: replaced by the LTI scoping at merge
    def visible_student_ids(self, staff_user_id: int) -> set[int] | None:
        """The students a staff member may see (``None``: all of them).

        Until sections exist every TA and instructor sees every student; the class view
        passes what this returns into each of its queries, so narrowing it here narrows
        every figure.
        """
        return None

    # ------------------------------------------------------------------ roster

    def roster(self, include_archived: bool = False) -> list[RosterRow]:
        """One progress row per student, ordered by name."""
        with self._read() as db:
            students = list(
                db.query(
                    "SELECT id, name, email, archived, last_seen_at FROM users"
                    " WHERE role = 'student'"
                    + ("" if include_archived else " AND archived = 0")
                    + " ORDER BY name COLLATE NOCASE, id"
                )
            )
            passed: dict[int, int] = {}
            for row in db.query(
                "SELECT c.user_id, c.step_id, c.passed FROM cell_revisions c JOIN ("
                " SELECT max(id) AS id FROM cell_revisions GROUP BY user_id, step_id"
                ") latest ON c.id = latest.id"
            ):
                if row["passed"] and row["step_id"] in self.step_ids:
                    passed[row["user_id"]] = passed.get(row["user_id"], 0) + 1
            answered: dict[int, int] = {}
            for row in db.query(
                "SELECT a.user_id, a.question_id, a.text FROM answer_revisions a JOIN ("
                " SELECT max(id) AS id FROM answer_revisions GROUP BY user_id, question_id"
                ") latest ON a.id = latest.id"
            ):
                if row["text"].strip() and row["question_id"] in self.question_ids:
                    answered[row["user_id"]] = answered.get(row["user_id"], 0) + 1
            reflections: dict[int, int] = {}
            for row in db.query(
                "SELECT t.user_id, t.slot, t.reflection FROM tutorial_revisions t JOIN ("
                " SELECT max(id) AS id FROM tutorial_revisions GROUP BY user_id, slot"
                ") latest ON t.id = latest.id"
            ):
                if row["reflection"].strip() and row["slot"] in self.slots:
                    reflections[row["user_id"]] = reflections.get(row["user_id"], 0) + 1
            project = {
                row["user_id"]: bool(row["reflection"].strip())
                for row in db.query(
                    "SELECT p.user_id, p.reflection FROM project_revisions p JOIN ("
                    " SELECT max(id) AS id FROM project_revisions GROUP BY user_id"
                    ") latest ON p.id = latest.id"
                )
            }
            paths = {
                row["user_id"]: row["path"]
                for row in db.query(
                    "SELECT t.user_id, t.path FROM tutorial_path_revisions t JOIN ("
                    " SELECT max(id) AS id FROM tutorial_path_revisions GROUP BY user_id"
                    ") latest ON t.id = latest.id"
                )
            }
            exported = {
                row["user_id"]: row["at"]
                for row in db.query(
                    "SELECT user_id, max(created_at) AS at FROM exports GROUP BY user_id"
                )
            }
            activity: dict[int, str] = {}
            for table in (
                "answer_revisions",
                "tutorial_revisions",
                "project_revisions",
                "cell_revisions",
                "tutorial_path_revisions",
            ):
                # Table names come from this fixed tuple, never from input.
                for row in db.query(
                    f"SELECT user_id, max(created_at) AS at FROM {table} GROUP BY user_id"
                ):
                    if row["at"] > activity.get(row["user_id"], ""):
                        activity[row["user_id"]] = row["at"]
            feedback = {
                row["student_id"]: "released" if row["released"] else "draft"
                for row in db.query(
                    "SELECT f.student_id, f.released FROM feedback f JOIN ("
                    " SELECT max(id) AS id FROM feedback GROUP BY student_id"
                    ") latest ON f.id = latest.id"
                )
            }
        out = []
        for s in students:
            uid = s["id"]
            last = max(filter(None, [activity.get(uid), s["last_seen_at"]]), default=None)
            out.append(
                RosterRow(
                    user_id=uid,
                    name=s["name"],
                    email=s["email"],
                    archived=bool(s["archived"]),
                    tutorial_path=paths.get(uid),
                    steps_passed=passed.get(uid, 0),
                    steps_total=len(self.step_ids),
                    reflections=reflections.get(uid, 0),
                    project_reflection=project.get(uid, False),
                    answers_nonempty=answered.get(uid, 0),
                    questions_total=len(self.question_ids),
                    last_export_at=_dt(exported.get(uid)),
                    last_activity_at=_dt(last),
                    feedback_status=feedback.get(uid, "none"),
                )
            )
        return out
