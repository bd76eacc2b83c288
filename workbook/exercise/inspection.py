"""What each step's check collects from the student's kernel.

Each step names the variables it reads, its own and those of the steps before it (so that a
difference can be traced to its cause), and step 6 names the function to call on phrases the
student has not seen. :func:`inspection_snippet` turns a step's request into the source that
runs in the kernel (see :mod:`workbook.exercise.check_kernel`).
"""

from __future__ import annotations

from workbook.errors import WorkbookError
from workbook.exercise import check_kernel, content
from workbook.exercise.tensors import SKETCH_SIZE

# Step 6 is tested on phrases and k values the student has not seen (they see k=5 and 10).
_LONG_PHRASE = (
    "On a quiet morning in the remote valley, the scientists walked to the river with "
    "their friends and family, read the notes they had written the night before, and "
    "talked about the strange animals they had seen near the old farm, because nobody in "
    "the town would believe them unless they could show"
)
UNSEEN_CALLS: tuple[tuple[str, int], ...] = (
    ("The cat sat on the", 1),
    ("Hello, my name is", 3),
    (_LONG_PHRASE, 7),
)

# Tensors of at most this many elements travel whole (token ids, top-k results, a tiny
# model's logits); larger floating tensors travel as per-row summaries.
_FULL_LIMIT = 4096
_INT_LIMIT = 65_536  # integer tensors (token ids) travel whole up to this many elements


class CheckError(WorkbookError):
    """A check cannot run: unknown step, or the kernel answered with something unusable."""


def _name(name: str, *rest: tuple[str, str]) -> list[list[str]]:
    return [["name", name], *[list(r) for r in rest]]


_PHRASE = ["phrase", _name("phrase")]
_INPUT_IDS = ["input_ids", _name("input_ids")]
_LOGITS = ["model_output.logits", _name("model_output", ("attr", "logits"))]
_LAST_LOGITS = ["last_token_logits", _name("last_token_logits")]
_LAST_PROBS = ["last_token_probabilities", _name("last_token_probabilities")]

# Each step collects its own variables and those of the steps before it (for the causes).
_REQUESTS: dict[str, dict] = {
    "step1": {
        "values": [
            _PHRASE,
            ["batch", _name("batch")],
            ["batch['input_ids']", _name("batch", ("item", "input_ids"))],
            ["batch['attention_mask']", _name("batch", ("item", "attention_mask"))],
            _INPUT_IDS,
        ]
    },
    "step2": {"values": [_PHRASE, _INPUT_IDS, ["model_output", _name("model_output")], _LOGITS]},
    "step3": {"values": [_PHRASE, _INPUT_IDS, _LOGITS, _LAST_LOGITS]},
    "step4": {
        "values": [
            _PHRASE,
            _INPUT_IDS,
            _LOGITS,
            _LAST_LOGITS,
            _LAST_PROBS,
            ["most_likely_token_id", _name("most_likely_token_id")],
            ["most_likely_token", _name("most_likely_token")],
            ["most_likely_token_probability", _name("most_likely_token_probability")],
        ]
    },
    "step5": {
        "values": [
            _PHRASE,
            _INPUT_IDS,
            _LOGITS,
            _LAST_LOGITS,
            _LAST_PROBS,
            ["most_likely_tokens", _name("most_likely_tokens")],
            ["most_likely_tokens.indices", _name("most_likely_tokens", ("attr", "indices"))],
            ["most_likely_tokens.values", _name("most_likely_tokens", ("attr", "values"))],
            ["most_likely_tokens_df", _name("most_likely_tokens_df")],
        ]
    },
    "step6": {
        "values": [],
        "function": {
            "name": "predict_next_tokens",
            "allowed_globals": list(content.ALLOWED_GLOBALS),
            "calls": [list(c) for c in UNSEEN_CALLS],
        },
    },
}

# Every check id the exercise may name (a test asserts each step's check is here).
CHECKS: frozenset[str] = frozenset(_REQUESTS)


def checked_step_id(step: content.Step | str) -> str:
    step_id = step if isinstance(step, str) else step.id
    if step_id not in _REQUESTS:
        raise CheckError(f"Step {step_id!r} has no automatic check.")
    return step_id


def inspection_snippet(step: content.Step | str) -> str:
    """Python source that binds the step's digest to ``__workbook_result__`` in a kernel.

    Raises:
        CheckError: the step has no check.
    """
    step_id = checked_step_id(step)
    request = dict(
        _REQUESTS[step_id],
        step=step_id,
        full_limit=_FULL_LIMIT,
        int_limit=_INT_LIMIT,
        sketch=SKETCH_SIZE,
    )
    return check_kernel.snippet(request)
