"""Steps 1-3's comparisons and their messages: the token ids, the logits, the last row.

Each ``cmp_step*`` compares the step's variables in the digest with the reference and
returns its problems, one sentence each: what is wrong and, where the digest shows it, why,
without revealing solution code or the values the step asks the student to find.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from workbook.exercise.cause_ids import problem
from workbook.exercise.causes import looks_like_probabilities, matching_position, upstream_problem
from workbook.exercise.digest import (
    a,
    a_type,
    absence,
    clip,
    fmt_shape,
    kind_of,
    short_type,
    tensor_values,
)
from workbook.exercise.tensors import LOGITS_TOL, PROBS_TOL, Rows, same, tensor_problems

_GRAD_WHY = (
    "Without it PyTorch records every operation of the forward pass and keeps the "
    "intermediate results in memory, to be able to compute gradients for training; to read "
    "predictions we never need them, so they only cost memory and time."
)


def cmp_step1(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    expected = ref["input_ids"]  # (1, n)
    n = expected.shape[-1]
    problems: list[str] = []
    absent = absence("batch", values.get("batch"), "call the tokenizer on `phrase`")
    if absent:
        problems.append(absent)
    elif kind_of(values.get("batch['input_ids']")) == "missing":
        problems.append(
            problem(
                "batch_without_ids",
                f"`batch` is {a_type(values['batch'])} without an 'input_ids' entry: it should "
                "be what the tokenizer returns for `phrase`.",
            )
        )
    desc = values.get("input_ids")
    absent = absence("input_ids", desc, "take it out of `batch`")
    if absent:
        problems.append(absent)
        return problems
    kind_problem = _not_a_tensor_of_ids(desc)
    if kind_problem:
        problems.append(kind_problem)
        return problems
    found = tensor_problems(
        "input_ids",
        desc,
        expected,
        integer=True,
        shape_hint=f" (a batch of one phrase of {n} tokens)",
    )
    if found and kind_of(desc) == "tensor" and not desc.get("floating"):
        mask = values.get("batch['attention_mask']")
        ones = tensor_values(desc)
        if (
            ones is not None
            and ones.numel()
            and bool((ones == 1).all())
            and not bool((expected == 1).all())
        ):
            where = " (`batch['attention_mask']`)" if kind_of(mask) == "tensor" else ""
            found = [
                problem(
                    "attention_mask_as_ids",
                    f"`input_ids` holds only 1s: that is the attention mask{where}, which marks "
                    "every token as real. Take the token ids, the 'input_ids' entry of `batch`.",
                )
            ]
        elif len(desc["shape"]) == 2 and desc["shape"][0] == 1:
            old = ref.get("ids_text")
            if old is not None and old != ref["phrase_text"]:
                found = [
                    problem(
                        "stale_phrase",
                        f"`input_ids` are the tokens of {clip(old, 60)!r}, not of `phrase` "
                        f"({clip(ref['phrase'], 60)!r}): tokenize `phrase` itself, in this cell.",
                    )
                ]
    problems += found
    batch_ids = values.get("batch['input_ids']")
    if not problems and kind_of(batch_ids) == "tensor" and not same(batch_ids, expected, None):
        problems.append(
            problem("stale_phrase", "`batch` does not hold the token ids of the current `phrase`.")
        )
    return problems


def _not_a_tensor_of_ids(desc: Mapping) -> str | None:
    """What to do when ``input_ids`` is not a tensor: each wrong type has its own remedy."""
    kind, short = kind_of(desc), short_type(desc)
    if kind == "tensor":
        return None
    if short == "BatchEncoding" or kind == "mapping":
        return problem(
            "whole_encoding",
            f"`input_ids` is the whole {short} the tokenizer returned (it holds the token ids "
            "and the attention mask). Take only its 'input_ids' entry.",
        )
    if short == "Encoding":
        return problem(
            "whole_encoding",
            "`input_ids` is an Encoding, the fast tokenizer's record of one phrase; take "
            "the 'input_ids' entry of `batch` instead.",
        )
    if short == "ndarray":
        return problem(
            "not_torch_tensor",
            "`input_ids` is an ndarray (NumPy), not a PyTorch tensor: ask the tokenizer for "
            "PyTorch tensors (the `return_tensors` argument).",
        )
    if kind == "sequence":
        return problem(
            "not_torch_tensor",
            f"`input_ids` is {a(short)}, not a PyTorch tensor: ask the tokenizer for "
            "PyTorch tensors (the `return_tensors` argument).",
        )
    return problem("not_a_tensor", f"`input_ids` is {a(short)}, not a PyTorch tensor of token ids.")


def cmp_step2(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    expected = ref["logits"]  # (1, n, V)
    n = expected.shape[1]
    absent = absence("model_output", values.get("model_output"), "run the model on `input_ids`")
    if absent:
        return [absent]
    desc = values.get("model_output.logits")
    if kind_of(desc) == "missing":
        return [
            problem(
                "not_defined",
                f"`model_output` is {a_type(values['model_output'])} without `.logits`: "
                "it should be what the model returns.",
            )
        ]
    absent = absence("model_output.logits", desc, "")
    if absent:
        return [absent]
    problems = tensor_problems(
        "model_output.logits",
        desc,
        expected,
        tol=LOGITS_TOL,
        shape_hint=f" (1 phrase, {n} tokens of `phrase`, vocabulary size)",
        expected_rows=ref["logits_rows"],
    )
    if problems and kind_of(desc) == "tensor":
        cause = upstream_problem(values, ref, ["input_ids"])
        same_shape = desc["shape"] == list(expected.shape)
        if cause:
            problems = [cause]
        elif same_shape and desc.get("floating") and same(desc, ref["ones_logits"](), LOGITS_TOL):
            problems = [
                problem(
                    "attention_mask_as_ids",
                    "`model_output.logits` are the model's scores for a sequence of 1s: the "
                    "model was given the attention mask instead of the token ids. Run it on "
                    "`input_ids`.",
                )
            ]
        elif same_shape:
            first = problems[0]
            problems[0] = problem(
                first.cause, first + " Run the model on the `input_ids` of the current phrase."
            )
    if kind_of(desc) == "tensor" and (desc.get("requires_grad") or desc.get("grad_fn")):
        problems.append(
            problem(
                "tracks_gradients",
                "`model_output.logits` tracks gradients (requires_grad=True): run the model "
                "inside `with torch.no_grad():`. " + _GRAD_WHY,
            )
        )
    if not problems and printed is not None and fmt_shape(expected.shape) not in printed:
        if "torch.Size(" in printed:
            problems.append(
                problem(
                    "shape_as_torch_size",
                    "The cell prints the shape as a torch.Size; print it as a list (convert it "
                    "with `list(...)`).",
                )
            )
        else:
            problems.append(
                problem(
                    "shape_not_printed",
                    "The cell's output does not show the shape of `model_output.logits` as a list.",
                )
            )
    return problems


def cmp_step3(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    logits = ref["logits"][0]  # (n, V)
    n, v = logits.shape
    desc = values.get("last_token_logits")
    absent = absence("last_token_logits", desc, "index `model_output.logits`")
    if absent:
        return [absent]
    problems = tensor_problems(
        "last_token_logits",
        desc,
        logits[-1],
        tol=LOGITS_TOL,
        shape_hint=f" (one score per vocabulary entry, {v:,})",
    )
    if not problems or kind_of(desc) != "tensor":
        return problems
    if desc["shape"] == [1, v]:
        return [problem("batch_dimension_kept", problems[0] + " It still has the batch dimension.")]
    if desc["shape"] == [n, v]:
        return [
            problem(
                "all_positions",
                problems[0] + " It holds the scores at every position: pick the last one.",
            )
        ]
    if desc["shape"] != [v] or not desc.get("floating"):
        return problems
    return _scores_cause("last_token_logits", desc, values, ref) or problems


def _scores_cause(label: str, desc: Mapping, values: Mapping, ref: Mapping) -> list[str]:
    """Why a (V,) tensor of scores is not the last position's logits, when the digest says."""
    logits_rows: Rows = ref["logits_rows"]
    n = len(logits_rows)
    last = ref["logits"][0, -1]
    if looks_like_probabilities(desc) or same(desc, torch.softmax(last, -1), PROBS_TOL):
        return [
            problem(
                "softmax_too_early",
                f"`{label}` already holds probabilities (they sum to 1): softmax belongs to "
                "step 4. Keep the raw scores, the logits, here.",
            )
        ]
    if same(desc, torch.log_softmax(last, -1), LOGITS_TOL):
        return [
            problem(
                "log_softmax",
                f"`{label}` holds log-probabilities (log_softmax); keep the raw logits here.",
            )
        ]
    position = matching_position(desc, logits_rows)
    if position is not None and position != n - 1:
        return [
            problem(
                "wrong_position",
                f"`{label}` holds the scores at token position {position} of {n} (counting "
                f"from 0); we want the scores after the last token, position {n - 1}.",
            )
        ]
    cause = upstream_problem(values, ref, ["input_ids", "model_output.logits"])
    return [cause] if cause else []
