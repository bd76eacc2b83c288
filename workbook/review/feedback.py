"""Feedback items: the parts of the homework a TA may comment on separately.

Each step a student writes, each Analysis question, and the tutorial reflections (or the
mini-project's) is an item; ``Feedback.item_comments`` is keyed by the items' ids. Also the
statuses a student's feedback goes through (``FEEDBACK_STATUSES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "FEEDBACK_STATUSES",
    "FeedbackItem",
    "feedback_items",
    "item_label",
]

FEEDBACK_STATUSES: tuple[str, ...] = ("none", "draft", "released")


@dataclass(frozen=True)
class FeedbackItem:
    """Something a TA may comment on separately: a step, a question or a reflection.

    Attributes:
        id: the key in ``Feedback.item_comments`` (``"step1"``, ``"Q1"``, ``"tutorial1"`` ...).
        label: how the item is named to the TA and the student.
    """

    id: str
    label: str


def feedback_items(tutorial_path: str | None = None) -> list[FeedbackItem]:
    """The items of the homework in the order a student works them.

    Args:
        tutorial_path: ``"project"`` offers one mini-project item instead of two tutorials.
    """
    from workbook.exercise import content

    items: list[FeedbackItem] = []
    if tutorial_path == "project":
        items.append(FeedbackItem("project", "Mini-project reflection"))
    else:
        items += [
            FeedbackItem("tutorial1", "Tutorial 1 reflection"),
            FeedbackItem("tutorial2", "Tutorial 2 reflection"),
        ]
    for step in content.steps():
        if not getattr(step, "given", False):
            items.append(FeedbackItem(step.id, _step_label(step)))
    for question in content.questions():
        items.append(FeedbackItem(question.id, question.title))
    return items


def item_label(item_id: str) -> str:
    """How an item of ``Feedback.item_comments`` is named to people (its id if unknown)."""
    for path in ("tutorials", "project"):
        for item in feedback_items(path):
            if item.id == item_id:
                return item.label
    return item_id


def _step_label(step: Any) -> str:
    return getattr(step, "title", "") or step.id
