"""The "Logits in Causal Language Models" exercise as data.

The notebook is a given setup cell and six graded steps; each step has instructions
(markdown), starter code with blanks (``___`` or ``...``), the names it must define, the id of
its automatic check (see ``workbook.exercise.checks``) and a reference solution. Solutions are
server-side only: the pages never show them; the tests and the end-to-end test run them.

The analysis questions Q1-Q3 are data too: a prompt, a hint that points the way without
giving the answer, and the rubric points TAs grade against.

The variable names (``batch``, ``input_ids``, ``model_output``, ...) are the course's; TAs read
the exported notebook with those names in mind, so keep them.

This module is where callers look the exercise up (its introduction, the cells in order, a
step or question by id); the data lives next to it: the setup cell in ``setup_cell``, steps
1-6 in ``graded_steps``, the questions in ``analysis_questions``.
"""

from __future__ import annotations

from workbook.errors import WorkbookError
from workbook.exercise.analysis_questions import QUESTIONS, Question
from workbook.exercise.graded_steps import (
    ALLOWED_GLOBALS,
    ALTERNATIVE_PHRASE,
    GRADED_STEPS,
    START_PHRASE,
    STEP6_EXAMPLES,
    Step,
)
from workbook.exercise.setup_cell import DEFAULT_MODEL, setup_code, setup_step

__all__ = [
    "DEFAULT_MODEL",
    "INTRODUCTION",
    "START_PHRASE",
    "ALTERNATIVE_PHRASE",
    "STEP6_EXAMPLES",
    "ALLOWED_GLOBALS",
    "Question",
    "Step",
    "UnknownExercise",
    "question",
    "question_ids",
    "questions",
    "setup_code",
    "step",
    "step_ids",
    "steps",
]


class UnknownExercise(WorkbookError, KeyError):
    """A step or question id that the exercise does not have."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else "unknown exercise id"


INTRODUCTION = f"""\
In this notebook you ask a causal language model how likely each token is to be the
*next* one: first step by step, then as a reusable function `predict_next_tokens`.

Each step has a code cell with blanks (`___` or `...`) to fill in. **Run** runs the cell in
your own Python kernel, and the workbook then checks your variables against the model's own
answer for the same phrase and tells you what differs. Variables live in the kernel: after
**Restart kernel**, use **Run all above** to rebuild them.

We start from the phrase `"{START_PHRASE}"`. Once everything works, try the famous one from
the GPT-2 announcement: `"{ALTERNATIVE_PHRASE}"`.
"""


def steps(model_name: str = DEFAULT_MODEL) -> list[Step]:
    """The notebook's cells in order: the given setup cell, then steps 1-6.

    Args:
        model_name: the model the setup cell loads (the app's ``Settings.model_name``).
    """
    return [setup_step(model_name), *GRADED_STEPS]


def step_ids() -> list[str]:
    """Ids of every cell, in notebook order."""
    return [s.id for s in steps()]


def step(step_id: str, model_name: str = DEFAULT_MODEL) -> Step:
    """The cell with id ``step_id``.

    Raises:
        UnknownExercise: no such step.
    """
    for candidate in steps(model_name):
        if candidate.id == step_id:
            return candidate
    raise UnknownExercise(f"There is no step {step_id!r}; the steps are {step_ids()}.")


def questions() -> list[Question]:
    """The analysis questions Q1-Q3, in order."""
    return list(QUESTIONS)


def question_ids() -> list[str]:
    """Ids of the analysis questions, in order."""
    return [q.id for q in QUESTIONS]


def question(question_id: str) -> Question:
    """The question with id ``question_id``.

    Raises:
        UnknownExercise: no such question.
    """
    for candidate in QUESTIONS:
        if candidate.id == question_id:
            return candidate
    raise UnknownExercise(
        f"There is no question {question_id!r}; the questions are {question_ids()}."
    )
