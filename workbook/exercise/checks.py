"""Automatic step checks: the student's objects, in their own kernel, against the engine.

A check has two halves:

1. **Kernel side.** :func:`inspection_snippet` builds Python source that runs silently in the
   student's kernel and binds a compact JSON digest of the student's objects to
   ``__workbook_result__``: type names, shapes, dtypes, whether a tensor tracks gradients,
   small tensors whole (base64 little-endian float32 / int64) and large ones as a per-row
   *summary* (mean, root mean square, max and where, min, and a 16-number sketch of each
   row, see :func:`workbook.exercise.check_kernel._k_summary`), tables, and for step 6 the results
   of calling ``predict_next_tokens`` on phrases the student has not seen, with what it
   printed, the globals it reads and its comments. A step also collects the variables of
   the steps before it, so that a difference can be traced to its cause (a variable left
   over from an older phrase). The snippet leaves no names behind, runs with the real
   builtins and reports, never raises, whatever the student's objects are.
2. **Server side.** :func:`reference_for` asks the ``LanguageModel`` for the same model and
   the student's own ``phrase``; :func:`compare` compares the digest with it (a summary with
   the same function's summary of the reference) and returns a :class:`CheckResult` whose
   message says in plain words what is wrong and, where the digest shows it, why: without
   revealing solution code or the values the step asks the student to find.

:func:`run_check` ties both together for anything with an ``inspect(code)`` method. This
module is the entry point; the parts live next to it: ``inspection`` (what each step
collects), ``digest`` (reading the digest, words for the messages), ``tensors`` (how tensors
are compared and summarised), ``references`` (the engine's reference), ``causes`` (a
variable of an earlier step that does not fit the phrase) and ``step_messages_1_3``,
``step_messages_4``, ``step_messages_5_6`` (each step's comparison and its message).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lm_engine import LMEngineError
from workbook.exercise import content
from workbook.exercise.cause_ids import problem
from workbook.exercise.digest import problem_with_phrase
from workbook.exercise.inspection import (
    CHECKS,
    UNSEEN_CALLS,
    CheckError,
    checked_step_id,
    inspection_snippet,
)
from workbook.exercise.references import reference_for
from workbook.exercise.step_messages_1_3 import cmp_step1, cmp_step2, cmp_step3
from workbook.exercise.step_messages_4 import cmp_step4
from workbook.exercise.step_messages_5_6 import (
    MIN_COMMENTS,
    cmp_step5,
    cmp_step6,
    starter_code_comments,
)

if TYPE_CHECKING:
    from lm_engine import LanguageModel

__all__ = [
    "CHECKS",
    "CheckError",
    "CheckResult",
    "Inspector",
    "MIN_COMMENTS",
    "UNSEEN_CALLS",
    "compare",
    "inspection_snippet",
    "printed_text",
    "reference_for",
    "run_check",
]


class Inspector(Protocol):
    """What a check needs from a kernel: run code silently, return ``__workbook_result__``."""

    def inspect(self, code: str) -> Any: ...


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a step's check.

    Attributes:
        passed: every part of the step matches the reference.
        message: what to tell the student, in plain words (with any notes when passed).
        details: every problem found, one sentence each (empty when passed).
        cause: the stable id of what the first problem names (a key of
            ``workbook.exercise.cause_ids.CAUSES``, such as ``"softmax_too_early"``);
            ``None`` when passed. Stored with the Run, so staff can count causes.
    """

    passed: bool
    message: str
    details: tuple[str, ...] = field(default_factory=tuple)
    cause: str | None = None


_COMPARE: dict[str, Callable[[Mapping, Mapping, str | None, list[str]], list[str]]] = {
    "step1": cmp_step1,
    "step2": cmp_step2,
    "step3": cmp_step3,
    "step4": cmp_step4,
    "step5": cmp_step5,
}

_PASS_MESSAGES = {
    "step1": "Your token ids match the model's tokenizer for this phrase.",
    "step2": "Your logits match the model's for every position of the phrase.",
    "step3": "You picked the scores for the token after the last one.",
    "step4": "Your probabilities, most likely token and printed line are right.",
    "step5": "Your top-10 tokens and table match the model's.",
    "step6": "predict_next_tokens works on new phrases and values of k, and is clean.",
}


def compare(digest: Mapping, reference: Mapping, *, printed: str | None = None) -> CheckResult:
    """Compare the kernel's digest with the engine's reference (pure; no kernel, no model).

    Args:
        digest: what the inspection snippet returned.
        reference: what :func:`reference_for` returned for the same step.
        printed: the text the student's cell printed (stdout), for the steps whose output is
            checked (2 and 4); ``None`` skips those parts.

    Returns:
        ``CheckResult``; when it fails, ``message`` lists the first problems in plain words.
    """
    if not isinstance(digest, Mapping) or "step" not in digest or "values" not in digest:
        return _result([_UNREADABLE])
    step_id = digest["step"]
    if reference.get("step") != step_id:
        raise CheckError(f"reference is for {reference.get('step')!r}, digest for {step_id!r}")
    if step_id == "step6":
        problems = cmp_step6(digest.get("function"), reference, starter_code_comments("step6"))
        return _result(problems, _PASS_MESSAGES[step_id])
    phrase_problem = problem_with_phrase(digest)
    if phrase_problem or "phrase" not in reference:
        return _result([phrase_problem or problem("read_failed", "`phrase` could not be read.")])
    notes: list[str] = []
    problems = _COMPARE[step_id](digest["values"], reference, printed, notes)
    return _result([p for p in problems if p], _PASS_MESSAGES[step_id], notes)


_UNREADABLE = problem(
    "check_unreadable", "The check could not read your kernel's variables; run the cell again."
)


def _result(
    problems: list[str], passed_message: str = "", notes: Sequence[str] = ()
) -> CheckResult:
    problems = list(dict.fromkeys(problems))  # a cause found by two parts is said once
    if not problems:
        message = f"Check passed. {passed_message}".strip()
        if notes:
            message += "\n" + "\n".join(notes)
        return CheckResult(passed=True, message=message)
    shown = problems[:3]
    more = len(problems) - len(shown)
    message = "Not yet:\n" + "\n".join(f"- {p}" for p in shown)
    if more:
        message += f"\n- ... and {more} more."
    # Every problem sentence is a cause_ids.Problem; a plain string would be a message
    # written without its id, counted as no specific cause rather than lost.
    cause = getattr(problems[0], "cause", "wrong_value")
    return CheckResult(passed=False, message=message, details=tuple(problems), cause=cause)


def printed_text(outputs: Sequence[Mapping] | str | None) -> str | None:
    """The stdout text of a cell's nbformat outputs (``None`` stays ``None``)."""
    if outputs is None or isinstance(outputs, str):
        return outputs
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            text = output.get("text", "")
            parts.append(text if isinstance(text, str) else "".join(text))
    return "".join(parts)


def run_check(
    step: content.Step | str,
    kernel: Inspector,
    lm: LanguageModel,
    *,
    outputs: Sequence[Mapping] | str | None = None,
) -> CheckResult:
    """Run a step's check: inspect the student's kernel, then compare with the engine.

    Args:
        step: the step (or its id) whose check to run.
        kernel: anything with ``inspect(code) -> value of __workbook_result__``.
        lm: the engine's model, the same one the setup cell loaded.
        outputs: the cell's nbformat outputs (or its stdout text) so that the printed
            shape (step 2) and printed probability (step 4) are checked too.

    Raises:
        CheckError: the step has no check.
        Errors of ``kernel.inspect`` (e.g. the kernel died) propagate unchanged.
    """
    step_id = checked_step_id(step)
    digest = kernel.inspect(inspection_snippet(step_id))
    if not isinstance(digest, Mapping) or digest.get("step") != step_id:
        return _result([_UNREADABLE])
    try:
        reference = reference_for(step_id, lm, digest)
        return compare(digest, reference, printed=printed_text(outputs))
    except LMEngineError as exc:
        return _result(
            [problem("phrase_unscorable", f"The model cannot score your phrase: {exc}.")]
        )
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        # Only a digest that is not what the snippet builds gets here (e.g. a student who
        # replaced json or exec in their kernel): say so rather than break the page.
        return _result(
            [
                problem(
                    "check_unreadable",
                    f"The check could not read your kernel's variables ({type(exc).__name__}); "
                    "restart the kernel and run the cells again.",
                )
            ]
        )
