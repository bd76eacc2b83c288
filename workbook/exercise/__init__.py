"""exercise: the homework's notebook as data, and the automatic check of each step.

- ``content``: the exercise looked up as a whole: its introduction, the cells in order, a
  step or question by id (the data lives in the three modules below);
- ``setup_cell``: the given setup cell and the model it loads by default;
- ``graded_steps``: steps 1-6 (instructions, starter code, names each step defines, reference
  solution) and the phrases they use;
- ``analysis_questions``: the analysis questions Q1-Q3 (prompt, hint, rubric);
- ``checks``: the entry point of a step's check (``CheckResult``, ``compare``,
  ``run_check``), which ties the parts below together;
- ``inspection``: what each step's check collects from the student's kernel;
- ``digest``: reading the digest the kernel sends back, and the words for the messages;
- ``tensors``: how tensors are compared and summarised (tolerances, per-row summaries);
- ``references``: the engine's reference for the student's own phrase (cached);
- ``cause_ids``: the stable id of each cause or kind of problem a message names (stored
  with each checked Run, counted on the staff's Class page);
- ``causes``: a variable of an earlier step that does not belong to the current phrase;
- ``step_messages_1_3``, ``step_messages_4``, ``step_messages_5_6``: each step's
  comparison and its message to the student;
- ``check_kernel``: the checks' kernel side, self-contained functions sent as source into
  the student's kernel.

Public names: the content (``steps``, ``step``, ``questions``, ...) and the check's result
(``CheckResult``, ``run_check``). Everything else is this package's own business.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "cause_ids": (
            "CAUSES",
            "GENERIC_CAUSES",
            "cause_label",
        ),
        "checks": (
            "CheckResult",
            "run_check",
        ),
        "content": (
            "DEFAULT_MODEL",
            "INTRODUCTION",
            "Question",
            "START_PHRASE",
            "Step",
            "UnknownExercise",
            "question",
            "question_ids",
            "questions",
            "setup_code",
            "step",
            "step_ids",
            "steps",
        ),
        "inspection": ("CheckError",),
    },
)
