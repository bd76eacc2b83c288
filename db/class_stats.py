"""The class view's figures, aggregated in SQL over the indexed work tables.
Mixed into ``Store``.

Every query takes ``student_ids``: the students the staff member may see (``None``: every
active student). The filter is part of the SQL (a bound JSON list read with ``json_each``),
so rows of other students never leave the database. Queries return aggregates (one row per
step, per cause, or per student and step), never one row per run; only the few students
listed as stuck get their last two code revisions read.

A *run* is a cell revision with ``ran_at`` set; a *checked* run also has ``passed`` (1/0).
A run whose cell raised an error has ``passed`` NULL: it is a run that did not pass.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

_SCOPE = (
    "scope AS (SELECT id FROM users WHERE role = 'student' AND archived = 0"
    " AND (:all_students OR id IN (SELECT value FROM json_each(:student_ids))))"
)
# The runs of the steps asked for, by students in scope.
_RUNS = (
    "runs AS (SELECT c.id, c.user_id, c.step_id, c.passed, c.cause, c.ran_at"
    " FROM cell_revisions c WHERE c.ran_at IS NOT NULL"
    " AND c.step_id IN (SELECT value FROM json_each(:steps))"
    " AND c.user_id IN (SELECT id FROM scope))"
)


def _params(student_ids: Collection[int] | None, steps: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "all_students": student_ids is None,
        "student_ids": json.dumps(sorted(int(i) for i in (student_ids or ()))),
        "steps": json.dumps(list(steps)),
    }


class ClassStatsMixin:
    """What the staff's Class page counts, one method per figure.

    Part of ``Store`` (``db/store.py``), which provides ``_read``.
    """

    def class_students(self, student_ids: Collection[int] | None) -> list[dict[str, Any]]:
        """The students in scope: ``id``, ``name``, ``email``, ordered by name."""
        with self._read() as db:
            return list(
                db.query(
                    f"WITH {_SCOPE} SELECT u.id, u.name, u.email FROM users u"
                    " WHERE u.id IN (SELECT id FROM scope) ORDER BY u.name COLLATE NOCASE, u.id",
                    _params(student_ids),
                )
            )

    def class_funnel(
        self, student_ids: Collection[int] | None, steps: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Per step: students who opened it (any revision), ran it, ever passed it, and
        whose latest run passes now (``step_id, opened, ran, ever_passed, pass_now``)."""
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            opened AS (SELECT step_id, count(DISTINCT user_id) AS n FROM cell_revisions
                       WHERE user_id IN (SELECT id FROM scope)
                       AND step_id IN (SELECT value FROM json_each(:steps)) GROUP BY step_id),
            per AS (SELECT user_id, step_id, coalesce(max(passed = 1), 0) AS ever,
                           max(id) AS last_run
                    FROM runs GROUP BY user_id, step_id)
            SELECT o.step_id, o.n AS opened, count(p.user_id) AS ran,
                   coalesce(sum(p.ever), 0) AS ever_passed,
                   coalesce(sum(c.passed = 1), 0) AS pass_now
            FROM opened o LEFT JOIN per p ON p.step_id = o.step_id
            LEFT JOIN cell_revisions c ON c.id = p.last_run
            GROUP BY o.step_id
        """
        with self._read() as db:
            found = {r["step_id"]: r for r in db.query(sql, _params(student_ids, steps))}
        empty = {"opened": 0, "ran": 0, "ever_passed": 0, "pass_now": 0}
        return [dict(found.get(step, {**empty, "step_id": step})) for step in steps]

    def class_exports(self, student_ids: Collection[int] | None) -> int:
        """How many students in scope exported their bundle at least once."""
        sql = (
            f"WITH {_SCOPE} SELECT count(DISTINCT user_id) AS n FROM exports"
            " WHERE user_id IN (SELECT id FROM scope)"
        )
        with self._read() as db:
            return int(next(db.query(sql, _params(student_ids)))["n"])

    def class_latest_texts(self, student_ids: Collection[int] | None) -> list[dict[str, Any]]:
        """Each student's latest answers, tutorial reflections and project reflection.

        Rows ``user_id, kind ('answer' | 'tutorial' | 'project' | 'path'), key, text``:
        one per student and item, for the completeness rules applied in Python.
        """
        sql = f"""
            WITH {_SCOPE}
            SELECT a.user_id, 'answer' AS kind, a.question_id AS key, a.text
            FROM answer_revisions a JOIN (
                SELECT max(id) AS id FROM answer_revisions
                WHERE user_id IN (SELECT id FROM scope) GROUP BY user_id, question_id
            ) l ON a.id = l.id
            UNION ALL
            SELECT t.user_id, 'tutorial', t.slot, t.reflection
            FROM tutorial_revisions t JOIN (
                SELECT max(id) AS id FROM tutorial_revisions
                WHERE user_id IN (SELECT id FROM scope) GROUP BY user_id, slot
            ) l ON t.id = l.id
            UNION ALL
            SELECT p.user_id, 'project', '', p.reflection
            FROM project_revisions p JOIN (
                SELECT max(id) AS id FROM project_revisions
                WHERE user_id IN (SELECT id FROM scope) GROUP BY user_id
            ) l ON p.id = l.id
            UNION ALL
            SELECT t.user_id, 'path', '', t.path
            FROM tutorial_path_revisions t JOIN (
                SELECT max(id) AS id FROM tutorial_path_revisions
                WHERE user_id IN (SELECT id FROM scope) GROUP BY user_id
            ) l ON t.id = l.id
        """
        with self._read() as db:
            return list(db.query(sql, _params(student_ids)))

    def class_causes(
        self, student_ids: Collection[int] | None, steps: Sequence[str], since: str | None = None
    ) -> list[dict[str, Any]]:
        """Per step and cause: distinct students whose latest failing run named it.

        Args:
            since: an ISO timestamp (``db.common._ts``); only latest failing runs from then
                on count. ``None``: all time.

        Returns:
            Rows ``step_id, cause, students``; ``cause`` is ``None`` for failing runs stored
            before cause ids existed (unclassified).
        """
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            last_fail AS (SELECT max(id) AS id FROM runs WHERE passed = 0
                          GROUP BY user_id, step_id)
            SELECT r.step_id, r.cause, count(*) AS students
            FROM last_fail f JOIN cell_revisions r ON r.id = f.id
            WHERE :since IS NULL OR r.ran_at >= :since
            GROUP BY r.step_id, r.cause ORDER BY r.step_id, students DESC, r.cause
        """
        with self._read() as db:
            return list(db.query(sql, {**_params(student_ids, steps), "since": since}))

    def class_next_runs(
        self, student_ids: Collection[int] | None, steps: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Per step and cause: did the run after a student's last run showing it pass?

        Returns:
            Rows ``step_id, cause, students`` (who saw it), ``followed`` (who ran the step
            again after their last run showing it) and ``passed_next`` (whose next run
            passed).
        """
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            shown AS (SELECT user_id, step_id, cause, max(id) AS id FROM runs
                      WHERE passed = 0 GROUP BY user_id, step_id, cause),
            nxt AS (SELECT s.step_id, s.cause,
                           (SELECT coalesce(c.passed, 0) FROM cell_revisions c
                            WHERE c.step_id = s.step_id AND c.user_id = s.user_id
                            AND c.id > s.id AND c.ran_at IS NOT NULL
                            ORDER BY c.id LIMIT 1) AS next_passed
                    FROM shown s)
            SELECT step_id, cause, count(*) AS students, count(next_passed) AS followed,
                   coalesce(sum(next_passed), 0) AS passed_next
            FROM nxt GROUP BY step_id, cause ORDER BY step_id, students DESC, cause
        """
        with self._read() as db:
            return list(db.query(sql, _params(student_ids, steps)))

    def class_attempts(
        self, student_ids: Collection[int] | None, steps: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Per student and step they ran: runs until the first pass, and when.

        Returns:
            Rows ``user_id, step_id, runs`` (all runs), ``attempts`` (runs up to and with the
            first passing one; ``None`` if never passed), ``first_at`` (first run) and
            ``pass_at`` (the first passing run, or ``None``).
        """
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            per AS (SELECT user_id, step_id, count(*) AS runs, min(ran_at) AS first_at,
                           min(CASE WHEN passed = 1 THEN id END) AS pass_id
                    FROM runs GROUP BY user_id, step_id)
            SELECT p.user_id, p.step_id, p.runs, p.first_at, c.ran_at AS pass_at,
                   CASE WHEN p.pass_id IS NULL THEN NULL ELSE
                       (SELECT count(*) FROM cell_revisions r WHERE r.step_id = p.step_id
                        AND r.user_id = p.user_id AND r.ran_at IS NOT NULL
                        AND r.id <= p.pass_id) END AS attempts
            FROM per p LEFT JOIN cell_revisions c ON c.id = p.pass_id
            ORDER BY p.step_id, p.user_id
        """
        with self._read() as db:
            return list(db.query(sql, _params(student_ids, steps)))

    def class_stuck(
        self,
        student_ids: Collection[int] | None,
        steps: Sequence[str],
        *,
        min_failures: int,
        first_run_before: str,
    ) -> list[dict[str, Any]]:
        """Students whose latest run of a step does not pass and who look stuck on it.

        Stuck: at least ``min_failures`` runs in a row that did not pass since their last
        passing run, or no passing run at all and a first run before ``first_run_before``
        (an ISO timestamp).

        Returns:
            Rows ``user_id, name, step_id, streak`` (runs in a row not passing),
            ``since`` (the first of them), ``first_at``, ``ever_passed``, and the latest
            run's ``cause``, ``message`` and ``last_at``.
        """
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            per AS (SELECT user_id, step_id, max(id) AS last_id, min(ran_at) AS first_at,
                           max(CASE WHEN passed = 1 THEN id END) AS last_pass
                    FROM runs GROUP BY user_id, step_id),
            failing AS (SELECT * FROM per WHERE last_pass IS NULL OR last_pass < last_id)
            SELECT p.user_id, u.name, p.step_id, count(r.id) AS streak,
                   min(r.ran_at) AS since, p.first_at, p.last_pass IS NOT NULL AS ever_passed,
                   l.cause, l.message, l.ran_at AS last_at
            FROM failing p
            JOIN cell_revisions r ON r.step_id = p.step_id AND r.user_id = p.user_id
                 AND r.ran_at IS NOT NULL AND r.id > coalesce(p.last_pass, 0)
            JOIN cell_revisions l ON l.id = p.last_id
            JOIN users u ON u.id = p.user_id
            GROUP BY p.user_id, p.step_id
            HAVING count(r.id) >= :k OR (p.last_pass IS NULL AND p.first_at <= :before)
            ORDER BY since, p.user_id, p.step_id
        """
        params = {**_params(student_ids, steps), "k": min_failures, "before": first_run_before}
        with self._read() as db:
            return list(db.query(sql, params))

    def class_last_codes(self, user_id: int, step_id: str) -> list[str]:
        """The student's last two different code texts of a step's cell, newest first."""
        sql = (
            "SELECT code, max(id) AS last FROM cell_revisions WHERE user_id = ? AND step_id = ?"
            " GROUP BY code ORDER BY last DESC LIMIT 2"
        )
        with self._read() as db:
            return [row["code"] for row in db.query(sql, [user_id, step_id])]

    def class_latest_runs(
        self, student_ids: Collection[int] | None, steps: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Each student's latest run of each step: ``user_id, step_id, code, passed, cause``
        (for the solution clusters: one row per student and step, never the history)."""
        sql = f"""
            WITH {_SCOPE}, {_RUNS},
            latest AS (SELECT max(id) AS id FROM runs GROUP BY user_id, step_id)
            SELECT c.user_id, c.step_id, c.code, c.passed, c.cause
            FROM latest l JOIN cell_revisions c ON c.id = l.id ORDER BY c.step_id, c.user_id
        """
        with self._read() as db:
            return list(db.query(sql, _params(student_ids, steps)))
