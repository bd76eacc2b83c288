"""``class_view``: every figure of the staff's Class page, for the students the viewer sees.

The store computes the figures' aggregates in SQL, over the students that
``Store.visible_student_ids(viewer)`` allows (``None``: all); nothing here reads a run that
is not in those aggregates. A student is refused here, on the server, whatever a page or a
command line does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from workbook.classview import clusters, misconceptions, privacy, progress, stuck, timing
from workbook.errors import WorkbookError
from workbook.exercise import content

__all__ = ["STAFF_ROLES", "ClassView", "ClassViewOptions", "ClassViewRefused", "class_view"]

STAFF_ROLES = ("ta", "instructor")


class ClassViewRefused(WorkbookError):
    """The class view was asked for by someone who is not course staff."""


@dataclass(frozen=True)
class ClassViewOptions:
    """What the page (or the command line) asks for.

    Attributes:
        recent_minutes: the window of "right now" for the causes (default 15).
        stuck_runs: K, runs in a row not passing that make a student stuck (default 3).
        stuck_minutes: N, minutes after the first run without a pass that do too.
        projection: pseudonyms, no code or messages, counts under 5 hidden.
        now: the moment the figures are for (tests pin it; default: now).
    """

    recent_minutes: float = 15
    stuck_runs: int = 3
    stuck_minutes: float = 20
    projection: bool = False
    now: datetime | None = None


@dataclass(frozen=True)
class ClassView:
    """The Class page's figures; each table is a list of flat records (one per row).

    Attributes:
        generated_at: the moment the figures are for.
        options: what was asked.
        students: students in scope.
        funnel: per step: opened, ran, ever passed, pass now.
        writing: per Q1-Q3 and reflection: started, long enough, final.
        exports: students who exported their bundle.
        causes: per step and cause: students recently and all time (``misconceptions``).
        specific: per step: the share of failing students without a specific cause.
        next_runs: per step and cause: the share whose next run passed.
        attempts: per step: attempts-to-pass histogram.
        survival: per step: time-to-pass Kaplan-Meier points.
        stuck: who is stuck now, longest first.
        clusters: per step: solution clusters, largest first.
    """

    generated_at: datetime
    options: ClassViewOptions
    students: int | None
    funnel: list[dict[str, Any]]
    writing: list[dict[str, Any]]
    exports: int | None
    causes: list[dict[str, Any]]
    specific: list[dict[str, Any]]
    next_runs: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    survival: list[dict[str, Any]]
    stuck: list[dict[str, Any]]
    clusters: list[dict[str, Any]] = field(default_factory=list)

    def top_causes(self, step_id: str, n: int = 3) -> list[dict[str, Any]]:
        """The ``n`` causes most students of a step show (recent first, then all time)."""
        return [r for r in self.causes if r["step_id"] == step_id][:n]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _hide(rows: list[dict[str, Any]], keys: tuple[str, ...], projection: bool) -> None:
    for row in rows:
        for key in keys:
            row[key] = privacy.hide_small(row[key], projection)


def class_view(store: Any, viewer: Any, options: ClassViewOptions | None = None) -> ClassView:
    """Every figure of the Class page for ``viewer``'s students.

    Args:
        store: the ``db.Store``.
        viewer: the signed-in user (``db.User``); a TA or the instructor.
        options: windows, thresholds and projection mode (defaults: ``ClassViewOptions()``).

    Raises:
        ClassViewRefused: the viewer is not course staff.
    """
    if viewer is None or getattr(viewer, "role", None) not in STAFF_ROLES:
        raise ClassViewRefused("The class view is for course staff (TAs and the instructor).")
    options = options or ClassViewOptions()
    now = options.now or datetime.now(UTC)
    options = replace(options, now=now)
    hidden = options.projection
    scope = store.visible_student_ids(viewer.id)
    all_steps = content.step_ids()
    checked = [s for s in all_steps if content.step(s).check is not None]
    titles = {
        s: ("Setup" if content.step(s).given else f"Step {content.step(s).number}")
        for s in all_steps
    }
    checked_titles = {s: titles[s] for s in checked}

    students = store.class_students(scope)
    names = {s["id"]: s["name"] for s in students}
    funnel = progress.funnel_rows(store.class_funnel(scope, all_steps), titles, set(checked))
    _hide(funnel, ("opened", "ran", "ever_passed", "pass_now"), hidden)
    writing = progress.writing_rows(store.class_latest_texts(scope))
    _hide(writing, ("started", "long_enough", "final"), hidden)

    recent_since = _iso(now - timedelta(minutes=options.recent_minutes))
    causes = misconceptions.cause_rows(
        store.class_causes(scope, checked),
        store.class_causes(scope, checked, since=recent_since),
        checked_titles,
    )
    specific = misconceptions.specific_share_rows(causes, checked_titles)
    next_runs = misconceptions.next_run_rows(store.class_next_runs(scope, checked), checked_titles)

    attempts_raw = store.class_attempts(scope, checked)
    attempts = timing.attempt_rows(attempts_raw, checked_titles)
    survival = timing.survival_rows(attempts_raw, checked_titles, now)

    def name_of(row: dict[str, Any]) -> str:
        return privacy.pseudonym(row["user_id"]) if hidden else names.get(row["user_id"], "?")

    stuck_list = stuck.stuck_rows(
        store.class_stuck(
            scope,
            checked,
            min_failures=options.stuck_runs,
            first_run_before=_iso(now - timedelta(minutes=options.stuck_minutes)),
        ),
        checked_titles,
        now,
        store.class_last_codes,
        min_failures=options.stuck_runs,
        name_of=name_of,
        with_code=not hidden,
    )
    cluster_list = clusters.cluster_rows(
        store.class_latest_runs(scope, checked), checked_titles, with_code=not hidden
    )
    if hidden:
        _hide(causes, ("students_recent", "students_all"), True)
        _hide(specific, ("failing", "no_specific_cause", "unclassified"), True)
        _hide(attempts, ("students",), True)
        _hide(survival, ("at_risk", "passed"), True)
        _hide(cluster_list, ("size", "passing"), True)
        for row in next_runs:
            if row["followed"] < privacy.HIDDEN_BELOW:
                row["next_pass_share"] = None
            _hide([row], ("students", "followed", "passed_next"), True)
        for row in specific:
            if row["failing"] is None:
                row["no_specific_share"] = None
        for row in cluster_list:
            row["causes"] = {c: privacy.hide_small(n, True) for c, n in row["causes"].items()}
            if row["size"] is None:
                row["pass_rate"] = None
    exports = privacy.hide_small(store.class_exports(scope), hidden)
    return ClassView(
        generated_at=now,
        options=options,
        students=privacy.hide_small(len(students), hidden),
        funnel=funnel,
        writing=writing,
        exports=exports,
        causes=causes,
        specific=specific,
        next_runs=next_runs,
        attempts=attempts,
        survival=survival,
        stuck=stuck_list,
        clusters=cluster_list,
    )
