"""The student's notebook work: answers to the questions and exercise cells, append-only.
Mixed into ``Store``.
"""

from __future__ import annotations

import json
from typing import Any

from db import validation as check
from db.common import _dt, _latest_revision, _latest_revisions, _now, _revision_history, _ts
from db.errors import NotFoundError, ValidationError
from db.models import AnswerRevision, CellRevision


class WorkMixin:
    """Answers and cells of the ``Store``; every save appends a revision.

    Part of ``Store`` (``db/store.py``), which provides ``_db``, ``_read``, ``_write``
    and ``_one``.
    """

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _answer(row: dict[str, Any]) -> AnswerRevision:
        return AnswerRevision(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            question_id=row["question_id"],
            text=row["text"],
        )

    def save_answer(self, user_id: int, question_id: str, text: str) -> AnswerRevision:
        """Append ``text`` as the newest revision of the answer to ``question_id``.

        Saving the same text as the latest revision returns that revision unchanged
        (autosave calls this often).

        Raises:
            ValidationError: unknown question id, or text over 20,000 characters.
            NotFoundError: no such user.
        """
        check.choice("question_id", question_id, self.question_ids)
        check.text("text", text)
        with self._write() as db:
            self._require_user(db, user_id)
            latest = _latest_revision(db, "answer_revisions", "question_id", user_id, question_id)
            if latest is not None and latest["text"] == text:
                return self._answer(latest)
            cursor = db.execute(
                "INSERT INTO answer_revisions (user_id, question_id, text, created_at)"
                " VALUES (?, ?, ?, ?)",
                [user_id, question_id, text, _ts(_now())],
            )
            row = self._one(db, "SELECT * FROM answer_revisions WHERE id = ?", [cursor.lastrowid])
        return self._answer(row)

    def answer(self, user_id: int, question_id: str) -> AnswerRevision:
        """The latest answer to ``question_id``.

        Raises:
            ValidationError: unknown question id.
            NotFoundError: nothing saved yet.
        """
        check.choice("question_id", question_id, self.question_ids)
        row = _latest_revision(self._db(), "answer_revisions", "question_id", user_id, question_id)
        if row is None:
            raise NotFoundError(f"no answer to {question_id} saved yet")
        return self._answer(row)

    def answers_for(self, user_id: int) -> dict[str, AnswerRevision]:
        """Latest answer per question id that has one, in ``question_ids`` order."""
        rows = _latest_revisions(self._db(), "answer_revisions", "question_id", user_id)
        found = {row["question_id"]: self._answer(row) for row in rows}
        return {qid: found[qid] for qid in self.question_ids if qid in found}

    def answer_history(self, user_id: int, question_id: str) -> list[AnswerRevision]:
        """Every revision of an answer, oldest first.

        Raises:
            ValidationError: unknown question id.
        """
        check.choice("question_id", question_id, self.question_ids)
        rows = _revision_history(
            self._db(), "answer_revisions", "question_id", user_id, question_id
        )
        return [self._answer(row) for row in rows]

    # ------------------------------------------------------------------ cells

    @staticmethod
    def _cell(row: dict[str, Any]) -> CellRevision:
        return CellRevision(
            id=row["id"],
            user_id=row["user_id"],
            created_at=_dt(row["created_at"]),
            step_id=row["step_id"],
            code=row["code"],
            outputs=json.loads(row["outputs"]),
            execution_count=row["execution_count"],
            passed=None if row["passed"] is None else bool(row["passed"]),
            message=row["message"],
            ran_at=_dt(row["ran_at"]),
            cause=row.get("cause"),
        )

    def save_cell(
        self,
        user_id: int,
        step_id: str,
        *,
        code: str,
        outputs: list[dict[str, Any]] | None = None,
        execution_count: int | None = None,
        passed: bool | None = None,
        message: str | None = None,
        cause: str | None = None,
    ) -> CellRevision:
        """Append a revision of one exercise step's cell.

        A code-only autosave (no outputs, execution count, result or message) whose code
        equals the latest revision's returns that revision (keeping its run results).
        Anything else is a run: it is appended with ``ran_at`` set, every time.

        Args:
            code: the cell's source, at most 200,000 characters.
            outputs: nbformat output dicts (JSON-serialisable, at most 20 MiB encoded).
            execution_count: the kernel's execution count.
            passed: the check result, ``None`` if not checked.
            message: the check's message, at most 20,000 characters.
            cause: the check's structured cause id (``softmax_too_early`` ...), ``None``
                when it passed or was not checked.

        Raises:
            ValidationError: unknown step id or a field over its limit.
            NotFoundError: no such user.
        """
        check.choice("step_id", step_id, self.step_ids)
        check.text("code", code, check.MAX_CODE)
        outputs_json = check.outputs(outputs)
        execution_count = check.optional_int("execution_count", execution_count, 0, 2**31 - 1)
        if passed is not None and not isinstance(passed, bool):
            raise ValidationError("passed", "passed must be True, False or None")
        if message is not None:
            check.text("message", message)
        if cause is not None:
            check.text("cause", cause, check.MAX_NAME, allow_empty=False)
        is_run = not (
            outputs is None
            and execution_count is None
            and passed is None
            and message is None
            and cause is None
        )
        now = _ts(_now())
        with self._write() as db:
            self._require_user(db, user_id)
            if not is_run:
                latest = _latest_revision(db, "cell_revisions", "step_id", user_id, step_id)
                if latest is not None and latest["code"] == code:
                    return self._cell(latest)
            cursor = db.execute(
                "INSERT INTO cell_revisions (user_id, step_id, code, outputs, execution_count,"
                " passed, message, cause, ran_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    user_id,
                    step_id,
                    code,
                    outputs_json,
                    execution_count,
                    None if passed is None else int(passed),
                    message,
                    cause,
                    now if is_run else None,
                    now,
                ],
            )
            row = self._one(db, "SELECT * FROM cell_revisions WHERE id = ?", [cursor.lastrowid])
        return self._cell(row)

    def cells_for(self, user_id: int) -> dict[str, CellRevision]:
        """Latest cell revision per step that has one, in ``step_ids`` order."""
        rows = _latest_revisions(self._db(), "cell_revisions", "step_id", user_id)
        found = {row["step_id"]: self._cell(row) for row in rows}
        return {sid: found[sid] for sid in self.step_ids if sid in found}

    def cell_history(self, user_id: int, step_id: str) -> list[CellRevision]:
        """Every revision of one step's cell, oldest first.

        Raises:
            ValidationError: unknown step id.
        """
        check.choice("step_id", step_id, self.step_ids)
        rows = _revision_history(self._db(), "cell_revisions", "step_id", user_id, step_id)
        return [self._cell(row) for row in rows]
