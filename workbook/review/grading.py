"""The grading scale: the course's grade labels, the points the store keeps for them.

The course grades on a scale of labels (``GRADE_SCALE``). The store keeps a grade as a number,
so labels map to points here (``grade_points`` / ``grade_label``) and nowhere else. Also the
error every review tool raises (``ReviewError``).
"""

from __future__ import annotations

from workbook.errors import WorkbookError

__all__ = [
    "GRADE_SCALE",
    "MAX_POINTS",
    "ReviewError",
    "grade_label",
    "grade_points",
]


class ReviewError(WorkbookError):
    """Input the review tools cannot use (a worksheet that is not Moodle's, an unknown grade)."""


# Best first. Points make the scale storable as a number and let a point-graded Moodle
# assignment receive a proportional grade.
GRADE_SCALE: tuple[str, ...] = (
    "Excellent",
    "Meets expectations",
    "Progressing",
    "Beginning",
    "Not submitted",
)
_POINTS: dict[str, float] = {
    "Excellent": 4.0,
    "Meets expectations": 3.0,
    "Progressing": 2.0,
    "Beginning": 1.0,
    "Not submitted": 0.0,
}
MAX_POINTS = 4.0


def grade_points(label: str | None) -> float | None:
    """The number stored for a scale label (``None`` for no grade yet).

    Raises:
        ReviewError: the label is not on the course's scale.
    """
    if label is None or label == "":
        return None
    try:
        return _POINTS[label]
    except KeyError:
        raise ReviewError(
            f"{label!r} is not on the grading scale; choose one of {', '.join(GRADE_SCALE)}."
        ) from None


def grade_label(points: float | None) -> str | None:
    """The scale label for a stored grade, or ``None`` when there is no grade.

    A number that is not on the scale (written by something else) is shown as the number.
    """
    if points is None:
        return None
    for label, value in _POINTS.items():
        if abs(value - float(points)) < 1e-9:
            return label
    return f"{float(points):g}"
