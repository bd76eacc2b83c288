"""How far the class is: the funnel per notebook step, and the writing (Q1-Q3, reflections).

Steps come from the store's aggregates. The writing is judged on each student's *latest*
text only, by the rules the Submit checklist uses (``workbook.quality``): *started* is
anything written; *long enough* is at least ``MIN_REFLECTION_WORDS`` words for a reflection
and ``MIN_ANSWER_WORDS`` for an answer; *final* is what the checklist has nothing more to
say about (no hint left).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbook.quality import MIN_REFLECTION_WORDS, answer_hints, reflection_hints, word_count

__all__ = ["MIN_ANSWER_WORDS", "WRITING_ITEMS", "funnel_rows", "step_label", "writing_rows"]

# The Analysis page sets no minimum; two sentences are the least a TA reads as an answer.
MIN_ANSWER_WORDS = 20

WRITING_ITEMS: tuple[tuple[str, str], ...] = (
    ("q1", "Q1"),
    ("q2", "Q2"),
    ("q3", "Q3"),
    ("reflection1", "Reflection 1"),
    ("reflection2", "Reflection 2"),
)


def _texts_per_student(rows: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, str]]:
    """Each student's latest text per writing item (a project reflection stands for both)."""
    raw: dict[int, dict[tuple[str, str], str]] = {}
    for row in rows:
        raw.setdefault(row["user_id"], {})[(row["kind"], row["key"])] = row["text"] or ""
    out: dict[int, dict[str, str]] = {}
    for user_id, items in raw.items():
        texts = {qid: items.get(("answer", qid), "") for qid in ("q1", "q2", "q3")}
        if items.get(("path", "")) == "project":
            project = items.get(("project", ""), "")
            texts["reflection1"] = texts["reflection2"] = project
        else:
            texts["reflection1"] = items.get(("tutorial", "1"), "")
            texts["reflection2"] = items.get(("tutorial", "2"), "")
        out[user_id] = texts
    return out


def _judge(item: str, text: str) -> tuple[bool, bool, bool]:
    """(started, long enough, final) for one latest text."""
    if not text.strip():
        return False, False, False
    if item.startswith("reflection"):
        return True, word_count(text) >= MIN_REFLECTION_WORDS, not reflection_hints(text)
    return True, word_count(text) >= MIN_ANSWER_WORDS, not answer_hints(item.upper(), text)


def writing_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per writing item: ``item, label, started, long_enough, final`` (students)."""
    per_student = _texts_per_student(rows)
    out = []
    for item, label in WRITING_ITEMS:
        counts = [0, 0, 0]
        for texts in per_student.values():
            for i, flag in enumerate(_judge(item, texts.get(item, ""))):
                counts[i] += flag
        out.append(
            {
                "item": item,
                "label": label,
                "started": counts[0],
                "long_enough": counts[1],
                "final": counts[2],
            }
        )
    return out


def step_label(step_id: str, titles: Mapping[str, str]) -> str:
    """ "Step 3" style label of a step id (the setup cell is "Setup")."""
    return titles.get(step_id, step_id)


def funnel_rows(
    rows: Sequence[Mapping[str, Any]], titles: Mapping[str, str], checked: set[str]
) -> list[dict[str, Any]]:
    """The store's funnel rows with labels; the setup cell has no check, so no pass counts."""
    out = []
    for row in rows:
        is_checked = row["step_id"] in checked
        out.append(
            {
                "step_id": row["step_id"],
                "step": step_label(row["step_id"], titles),
                "opened": row["opened"],
                "ran": row["ran"],
                "ever_passed": row["ever_passed"] if is_checked else None,
                "pass_now": row["pass_now"] if is_checked else None,
            }
        )
    return out
