"""exercise: the homework's notebook as data, and the automatic check of each step.

- ``content``: the setup cell, steps 1-6 (instructions, starter code, names each step
  defines, reference solution) and the analysis questions Q1-Q3;
- ``checks``: what each step's check collects from the student's kernel, the engine's
  reference for the same phrase, and the comparison with its message to the student;
- ``check_kernel``: the checks' kernel side, self-contained functions sent as source into
  the student's kernel.

Public names: the content (``steps``, ``step``, ``questions``, ...) and the check's result
(``CheckResult``, ``run_check``). Everything else is this package's own business.
"""

from workbook.exercise.checks import CheckError, CheckResult, run_check
from workbook.exercise.content import (
    DEFAULT_MODEL,
    INTRODUCTION,
    START_PHRASE,
    Question,
    Step,
    UnknownExercise,
    question,
    question_ids,
    questions,
    setup_code,
    step,
    step_ids,
    steps,
)

__all__ = [
    "DEFAULT_MODEL",
    "INTRODUCTION",
    "START_PHRASE",
    "CheckError",
    "CheckResult",
    "Question",
    "Step",
    "UnknownExercise",
    "question",
    "question_ids",
    "questions",
    "run_check",
    "setup_code",
    "step",
    "step_ids",
    "steps",
]
