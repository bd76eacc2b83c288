"""The tutorial-log rules (homework Part A), as friendly messages.

A student either logs **two** resources from **two different** sections of the tutorials
site's left menu, with one reflection paragraph each, or takes the alternative path: the
classifier-from-scratch mini-project (what they built, a link or an uploaded notebook, and
a reflection). "Introduction to PyTorch" counts as one resource as a whole; the YouTube
series asks the student to type the code out.

Nothing here blocks saving: the store keeps whatever the student typed, and these rules say
what is still missing or worth a second look. Each message is written for the student.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from db import DbError
from workbook import quality
from workbook.errors import WorkbookError
from workbook.tutorials.catalog import (
    INTRO_CATEGORY,
    OTHER_CATEGORY,
    YOUTUBE_CATEGORY,
    guidance_for,
    is_youtube,
)

if TYPE_CHECKING:
    from db import ProjectEntry, Store, TutorialEntry, TutorialLog

__all__ = [
    "PATHS",
    "SLOTS",
    "Issue",
    "TutorialLogError",
    "check_entry",
    "check_log",
    "check_project",
    "effective_category",
    "is_complete",
    "parse_minutes",
    "set_path",
    "update_entry",
    "update_project",
]

SLOTS: tuple[str, ...] = ("1", "2")
PATHS: tuple[str, ...] = ("tutorials", "project")


class TutorialLogError(WorkbookError):
    """A tutorial-log value the store refused; the message says which field and why."""


@dataclass(frozen=True)
class Issue:
    """One message about the tutorial log.

    Attributes:
        level: ``"error"`` (must be fixed before submitting), ``"warning"`` (worth
            revising, does not block) or ``"tip"`` (the course's advice for this choice).
        code: a stable id, e.g. ``"same_category"`` or ``"reflection_short"``.
        message: what to do, written for the student.
        slot: ``"1"``/``"2"`` for one tutorial, ``"project"``, or ``None`` for the whole log.
    """

    level: str
    code: str
    message: str
    slot: str | None = None


def effective_category(category: str, title: str = "", url: str = "") -> str:
    """The section a resource counts under for the "two different sections" rule.

    The YouTube series is filed under "Introduction to PyTorch" in today's catalog but was
    its own section when the homework was written; the course treats it as its own.
    """
    if is_youtube(title, url, category):
        return YOUTUBE_CATEGORY
    return category.strip()


def parse_minutes(raw: str | int | None) -> int | None:
    """Minutes spent, from what a student typed (``"90"``, ``"1h 30"``, ``"1:30"``, ``""``).

    Raises:
        ValueError: the text is not a time; the message says what to type.
    """
    if raw is None or isinstance(raw, int):
        return raw
    text = raw.strip().lower()
    if not text:
        return None
    try:
        if ":" in text:
            hours, minutes = text.split(":", 1)
            value = int(hours) * 60 + int(minutes)
        elif "h" in text:
            hours, _, rest = text.partition("h")
            rest = rest.replace("min", "").replace("m", "").strip()
            value = int(float(hours) * 60) + (int(rest) if rest else 0)
        else:
            value = int(text.replace("min", "").replace("m", "").strip())
    except ValueError:
        raise ValueError(
            f"{raw!r} is not a time. Type minutes (90), hours and minutes (1h 30) or 1:30."
        ) from None
    if value < 0:
        raise ValueError("The time spent cannot be negative.")
    return value


def _name(slot: str) -> str:
    return f"Tutorial {slot}"


def _reflection_issues(text: str, slot: str, owner: str) -> list[Issue]:
    issues = []
    for hint in quality.reflection_hints(text):
        level = "error" if hint.level == "missing" else "warning"
        message = hint.message
        if hint.code == "reflection_missing":
            message = (
                f"{owner}: the reflection is missing. Write one paragraph: which concepts "
                "you reviewed or learned, and how it went."
            )
        issues.append(Issue(level, hint.code, message, slot))
    return issues


def check_entry(entry: TutorialEntry | Any, categories: Iterable[str] | None = None) -> list[Issue]:
    """Issues with one tutorial entry on its own.

    Args:
        entry: anything with ``slot, category, title, url, minutes, dates, reflection``.
        categories: the sections a student may pick (``Catalog.categories``); when given, a
            category outside them is reported.
    """
    slot = str(entry.slot)
    who = _name(slot)
    issues: list[Issue] = []
    if not entry.title.strip():
        issues.append(Issue("error", "title_missing", f"{who}: give the resource's title.", slot))
    if not entry.url.strip():
        issues.append(Issue("error", "url_missing", f"{who}: add the link to the resource.", slot))
    elif not entry.url.strip().lower().startswith(("http://", "https://")):
        issues.append(
            Issue("error", "url_invalid", f"{who}: the link should start with https://.", slot)
        )
    category = entry.category.strip()
    if not category or category == OTHER_CATEGORY:
        issues.append(
            Issue(
                "error",
                "category_missing",
                f"{who}: pick the section of the site's left menu this resource is in.",
                slot,
            )
        )
    elif categories is not None and category not in set(categories):
        issues.append(
            Issue(
                "error",
                "category_unknown",
                f"{who}: {category!r} is not a section of the tutorials menu; pick one "
                "from the list.",
                slot,
            )
        )
    if entry.minutes is None:
        issues.append(
            Issue("warning", "minutes_missing", f"{who}: note how many minutes you spent.", slot)
        )
    if not entry.dates:
        issues.append(
            Issue("warning", "dates_missing", f"{who}: note the date(s) you worked on it.", slot)
        )
    issues.extend(_reflection_issues(entry.reflection, slot, who))
    # The course's advice for this choice, so the student sees it where it applies.
    if is_youtube(entry.title, entry.url, category):
        issues.append(
            Issue(
                "tip",
                "youtube_type_code",
                f"{who} is the video series: type the code out yourself as you watch, "
                "do not copy-paste it. Mention in your reflection what you typed and ran.",
                slot,
            )
        )
    elif category == INTRO_CATEGORY:
        issues.append(
            Issue(
                "tip",
                "intro_whole_category",
                f"{who}: 'Introduction to PyTorch' counts as one resource as a whole. Work "
                "through the whole section (skim what you know) and reflect on it as one.",
                slot,
            )
        )
    else:
        advice = guidance_for(category)
        if advice is not None and advice.kind == "caution":
            issues.append(Issue("tip", "category_caution", f"{who}: {advice.text}", slot))
    return issues


def check_project(project: ProjectEntry | Any | None) -> list[Issue]:
    """Issues with the mini-project entry (``None`` when nothing was logged yet)."""
    if project is None:
        return [
            Issue(
                "error",
                "project_missing",
                "Describe your classifier-from-scratch project, add a link or upload the "
                "notebook, and write your reflection.",
                "project",
            )
        ]
    issues: list[Issue] = []
    if not project.description.strip():
        issues.append(
            Issue(
                "error",
                "project_description_missing",
                "Say what you built: the data, the model and how well it did.",
                "project",
            )
        )
    link = project.link.strip()
    if not link and not project.notebook_name:
        issues.append(
            Issue(
                "error",
                "project_link_missing",
                "Add a link to your project (e.g. Colab or GitHub) or upload its notebook.",
                "project",
            )
        )
    elif link and not link.lower().startswith(("http://", "https://")):
        issues.append(
            Issue("error", "url_invalid", "The project link should start with https://.", "project")
        )
    issues.extend(_reflection_issues(project.reflection, "project", "Project"))
    return issues


def check_log(log: TutorialLog | Any, categories: Iterable[str] | None = None) -> list[Issue]:
    """Every issue with a student's tutorial log, errors first.

    Args:
        log: anything with ``path``, ``entries`` (slot -> entry) and ``project``.
        categories: the sections a student may pick; see :func:`check_entry`.
    """
    if log.path not in PATHS:
        return [
            Issue(
                "error",
                "path_missing",
                "Choose your path: two PyTorch tutorials, or the classifier-from-scratch "
                "mini-project instead.",
            )
        ]
    if log.path == "project":
        issues = check_project(log.project)
    else:
        categories = list(categories) if categories is not None else None
        issues = []
        entries = log.entries or {}
        for slot in SLOTS:
            entry = entries.get(slot)
            if entry is None:
                issues.append(
                    Issue(
                        "error",
                        "entry_missing",
                        f"{_name(slot)} is not logged yet: pick a resource and write about it.",
                        slot,
                    )
                )
            else:
                issues.extend(check_entry(entry, categories))
        first, second = entries.get("1"), entries.get("2")
        if first is not None and second is not None:
            a = effective_category(first.category, first.title, first.url)
            b = effective_category(second.category, second.title, second.url)
            if a and a == b and a != OTHER_CATEGORY:
                if a == INTRO_CATEGORY:
                    message = (
                        "Both resources are from 'Introduction to PyTorch', which counts as "
                        "one resource as a whole. Pick your second one from another section."
                    )
                else:
                    message = (
                        f"Both resources are from '{a}'. Pick your second one from a "
                        "different section of the left menu."
                    )
                issues.append(Issue("error", "same_category", message, "2"))
    order = {"error": 0, "warning": 1, "tip": 2}
    return sorted(issues, key=lambda issue: order.get(issue.level, 3))


def is_complete(log: TutorialLog | Any, categories: Iterable[str] | None = None) -> bool:
    """Whether the log has no errors (warnings and tips do not count)."""
    return not any(issue.level == "error" for issue in check_log(log, categories))


# --- saving one field at a time ---------------------------------------------------------
# The page autosaves each field on its own. The store keeps whole entries, so a field's
# save reads the latest entry and replaces only that field: an edit made in another tab
# to a *different* field is kept, and for the same field the later save wins while the
# earlier one stays in the store's history.

_ENTRY_FIELDS = (
    "category",
    "title",
    "url",
    "from_catalog",
    "dates",
    "minutes",
    "notes",
    "reflection",
)
_PROJECT_FIELDS = ("description", "link", "reflection")


def update_entry(store: Store | Any, user_id: int, slot: str, **changes: Any) -> TutorialEntry:
    """Save some fields of one tutorial entry, keeping the others as last saved.

    Args:
        store: the ``db.Store``.
        user_id: the student.
        slot: ``"1"`` or ``"2"``.
        **changes: any of ``category, title, url, from_catalog, dates, minutes, notes,
            reflection``.

    Raises:
        TutorialLogError: a value is refused (too long, not a link, not a date ...);
            the message says which and why.
    """
    unknown = set(changes) - set(_ENTRY_FIELDS)
    if unknown:
        raise TypeError(f"unknown tutorial entry field(s): {', '.join(sorted(unknown))}")
    try:
        latest = store.tutorial_log(user_id).entries.get(slot)
        fields = {name: getattr(latest, name) for name in _ENTRY_FIELDS} if latest else {}
        fields.update(changes)
        return store.log_tutorial(user_id, slot, **fields)
    except DbError as exc:
        raise TutorialLogError(_friendly(exc)) from exc


def update_project(store: Store | Any, user_id: int, **changes: Any) -> ProjectEntry:
    """Save some fields of the mini-project entry, keeping the others as last saved.

    Args:
        store: the ``db.Store``.
        user_id: the student.
        **changes: any of ``description, link, reflection``, and ``notebook_name`` with
            ``notebook_bytes`` for an upload (``b""`` removes the notebook).

    Raises:
        TutorialLogError: a value is refused; the message says which and why.
    """
    unknown = set(changes) - {*_PROJECT_FIELDS, "notebook_name", "notebook_bytes"}
    if unknown:
        raise TypeError(f"unknown project field(s): {', '.join(sorted(unknown))}")
    try:
        latest = store.tutorial_log(user_id).project
        fields = {name: getattr(latest, name) for name in _PROJECT_FIELDS} if latest else {}
        fields.update(changes)
        return store.log_project(user_id, **fields)
    except DbError as exc:
        raise TutorialLogError(_friendly(exc)) from exc


def set_path(store: Store | Any, user_id: int, path: str) -> None:
    """Record the student's path (``"tutorials"`` or ``"project"``); the other path's
    entries are kept, so switching back loses nothing."""
    if path not in PATHS:
        raise TutorialLogError("Choose either two tutorials or the mini-project.")
    try:
        store.set_tutorial_path(user_id, path)
    except DbError as exc:
        raise TutorialLogError(_friendly(exc)) from exc


def _friendly(exc: DbError) -> str:
    message = str(exc)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
