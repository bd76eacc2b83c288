"""Causes: a variable of an earlier step that does not belong to the current phrase.

When a step's values differ, the digest often shows why: ``input_ids`` of an older phrase,
``model_output`` computed before ``phrase`` changed, scores that are already probabilities or
come from another position. The step messages name such a cause instead of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from workbook.exercise.cause_ids import problem
from workbook.exercise.digest import clip, kind_of
from workbook.exercise.tensors import LOGITS_TOL, PROBS_TOL, Rows, described_rows, same

_RUN_IN_ORDER = (
    "Run the steps in order from step {step} (or press Run all above on this step), then this one."
)


def _ids_problem(values: Mapping, ref: Mapping) -> str | None:
    """Why ``input_ids`` are not the current phrase's, if they are not (None otherwise)."""
    desc = values.get("input_ids")
    if kind_of(desc) != "tensor" or desc.get("floating"):
        return None
    if same(desc, ref["input_ids"], None):
        return None
    old = ref.get("ids_text")
    if old is not None and old != ref["phrase_text"]:
        return problem(
            "stale_phrase",
            f"Your `input_ids` are the tokens of {clip(old, 60)!r}, but `phrase` is now "
            f"{clip(ref['phrase'], 60)!r}: the later variables come from an older phrase. "
            + _RUN_IN_ORDER.format(step=1),
        )
    return problem(
        "stale_phrase",
        "Your `input_ids` are not the tokenizer's ids for the current `phrase`. "
        + _RUN_IN_ORDER.format(step=1),
    )


def upstream_problem(values: Mapping, ref: Mapping, names: Sequence[str]) -> str | None:
    """The first variable of an earlier step (in ``names``) that does not fit the phrase.

    Only variables that exist and are tensors are judged; a missing one is the own
    comparison's business.
    """
    for name in names:
        desc = values.get(name)
        if kind_of(desc) != "tensor":
            continue
        if name == "input_ids":
            ids_problem = _ids_problem(values, ref)
            if ids_problem:
                return ids_problem
        elif name == "model_output.logits":
            if not same(desc, ref["logits"], LOGITS_TOL, ref["logits_rows"]):
                return problem(
                    "stale_phrase",
                    "Your `model_output` (step 2) does not belong to the current `phrase`: "
                    "it was computed before `phrase` or `input_ids` changed, or step 2 does "
                    "not pass yet. " + _RUN_IN_ORDER.format(step=2),
                )
        elif name == "last_token_logits":
            if not same(desc, ref["logits"][0, -1], LOGITS_TOL):
                return problem(
                    "stale_phrase",
                    "Your `last_token_logits` (step 3) do not belong to the current "
                    "`phrase`, or step 3 does not pass yet. " + _RUN_IN_ORDER.format(step=3),
                )
        elif name == "last_token_probabilities" and not same(desc, ref["probabilities"], PROBS_TOL):
            return problem(
                "stale_phrase",
                "Your `last_token_probabilities` (step 4) do not belong to the current "
                "`phrase`, or step 4 does not pass yet. " + _RUN_IN_ORDER.format(step=4),
            )
    return None


def matching_position(desc: Mapping, logits_rows: Rows) -> int | None:
    """The position whose logits row the 1-D tensor ``desc`` equals, if any."""
    mine = described_rows(desc)
    if mine is None or len(mine) != 1:
        return None
    for position in range(len(logits_rows)):
        if mine.matches(0, logits_rows, position, LOGITS_TOL):
            return position
    return None


def looks_like_probabilities(desc: Mapping) -> bool:
    """Non-negative and summing to 1 along the last dimension (softmax already applied)."""
    mine = described_rows(desc)
    if mine is None or not len(mine) or mine.nonfinite:
        return False
    return bool(
        (mine.min >= 0).all()
        and all(math.isclose(mine.sum(i), 1.0, abs_tol=1e-3) for i in range(len(mine)))
    )
