"""Step 4's comparison and its messages: the probabilities, the most likely token, the output.

Each part (``last_token_probabilities``, the token's id, string and probability, the printed
line) is judged on its own, and a message says what kind of value is wrong, never the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch

from workbook.exercise.cause_ids import problem
from workbook.exercise.causes import looks_like_probabilities, upstream_problem
from workbook.exercise.digest import a_type, absence, fmt, kind_of, scalar_id, tensor_values
from workbook.exercise.tensors import (
    LOGITS_TOL,
    PROB_RTOL,
    PROBS_TOL,
    described_rows,
    same,
    tensor_problems,
)


def cmp_step4(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    problems: list[str] = []
    probs = ref["probabilities"]  # (V,)
    v = probs.shape[0]
    upstream = ["input_ids", "model_output.logits", "last_token_logits"]
    desc = values.get("last_token_probabilities")
    absent = absence("last_token_probabilities", desc, "apply softmax to `last_token_logits`")
    if absent:
        problems.append(absent)
    else:
        found = tensor_problems(
            "last_token_probabilities",
            desc,
            probs,
            tol=PROBS_TOL,
            shape_hint=f" (one probability per vocabulary entry, {v:,})",
        )
        if found and kind_of(desc) == "tensor" and desc.get("floating") and desc["shape"] == [v]:
            found = _probabilities_cause(desc, values, ref, upstream) or found
        problems += found
    problems += _argmax_problems(values, ref, upstream)
    problems += _token_problems(values.get("most_likely_token"), ref)
    problems += _probability_problems(
        values.get("most_likely_token_probability"), ref, values, upstream
    )
    if printed is not None:
        problems += _printed_problems(printed, ref)
    return problems


def _probabilities_cause(
    desc: Mapping, values: Mapping, ref: Mapping, upstream: Sequence[str]
) -> list[str]:
    """Why ``last_token_probabilities`` differ, when the digest says."""
    last = ref["logits"][0, -1]  # (V,)
    if same(desc, last, LOGITS_TOL):
        return [
            problem(
                "logits_not_probabilities",
                "`last_token_probabilities` still holds the logits: turn them into "
                "probabilities with softmax.",
            )
        ]
    if same(desc, torch.log_softmax(last, -1), LOGITS_TOL):
        return [
            problem(
                "log_softmax",
                "`last_token_probabilities` holds log-probabilities (log_softmax, all "
                "negative); use softmax.",
            )
        ]
    if looks_like_probabilities(values.get("last_token_logits")):
        return [
            problem(
                "softmax_twice",
                "Softmax was applied twice: your `last_token_logits` already sum to 1, so "
                "softmax was applied in step 3. Keep the raw logits in step 3, run it again, "
                "then this step.",
            )
        ]
    cause = upstream_problem(values, ref, upstream)
    if cause:
        return [cause]
    mine = described_rows(desc)
    if mine is not None and len(mine) == 1 and not math.isclose(mine.sum(0), 1.0, abs_tol=1e-3):
        return [
            problem(
                "not_normalised",
                f"`last_token_probabilities` sums to {fmt(mine.sum(0))}; a probability "
                "distribution over the vocabulary sums to 1 (softmax over the last dimension).",
            )
        ]
    rows_all = ref["logits"][0]  # (n, V)
    for position in range(rows_all.shape[0] - 1):
        if same(desc, torch.softmax(rows_all[position], -1), PROBS_TOL):
            return [
                problem(
                    "wrong_position",
                    f"`last_token_probabilities` are the probabilities after token position "
                    f"{position}; we want those after the last token.",
                )
            ]
    return []


def _argmax_problems(values: Mapping, ref: Mapping, upstream: Sequence[str]) -> list[str]:
    """``most_likely_token_id``: what kind of id it is, never which id it should be."""
    v = ref["probabilities"].shape[0]
    desc = values.get("most_likely_token_id")
    absent = absence("most_likely_token_id", desc, "take the argmax of the probabilities")
    if absent:
        return [absent]
    got_id, why = scalar_id(desc)
    if why:
        return [problem("wrong_dtype", f"`most_likely_token_id` {why}.")]
    if got_id == ref["argmax"]:
        return []
    if not 0 <= got_id < v:
        return [
            problem(
                "id_out_of_vocab",
                f"`most_likely_token_id` is {got_id}, which is not a token id (the vocabulary "
                f"has {v:,} entries): take the argmax over the vocabulary only.",
            )
        ]
    if got_id == ref["argmin"]:
        return [
            problem(
                "least_likely",
                "`most_likely_token_id` is the *least* likely next token: argmax, not argmin.",
            )
        ]
    cause = upstream_problem(values, ref, [*upstream, "last_token_probabilities"])
    if cause:
        return [cause]
    argmax_by_position = [int(i) for i in ref["logits_rows"].argmax]
    for position, token_id in enumerate(argmax_by_position[:-1]):
        if got_id == token_id:
            return [
                problem(
                    "wrong_position",
                    f"`most_likely_token_id` is the most likely token after position "
                    f"{position}; we want the one after the last token.",
                )
            ]
    return [
        problem(
            "wrong_value",
            "`most_likely_token_id` is not the id of the most likely next token: take the "
            "argmax of `last_token_probabilities`.",
        )
    ]


def _token_problems(desc: Mapping | None, ref: Mapping) -> list[str]:
    """``most_likely_token``: the kind of string it is, never the string it should be."""
    if kind_of(desc) == "missing":
        return [absence("most_likely_token", desc, "decode the token id")]
    if kind_of(desc) != "scalar" or not isinstance(desc.get("value"), str):
        return [
            problem(
                "wrong_dtype",
                f"`most_likely_token` is {a_type(desc or {})}; expected the decoded string.",
            )
        ]
    got = desc["value"]
    if got == ref["token"]:
        return []
    if "id_token" in ref and got == ref["id_token"]:
        return []  # decoded right, from a wrong id: the id's own problem says why
    if got.strip().lstrip("[").rstrip("]").strip().isdigit():
        return [
            problem(
                "id_as_text",
                "`most_likely_token` is the id written as text: decode the id with the "
                "tokenizer to get the token's string.",
            )
        ]
    if got == ref["raw_token"] and got != ref["token"]:
        return [
            problem(
                "raw_vocab_entry",
                "`most_likely_token` is the vocabulary's raw entry (its internal spelling, with "
                "a marker for a leading space): decode the id with the tokenizer to get the "
                "text.",
            )
        ]
    return [
        problem(
            "wrong_value",
            "`most_likely_token` is not the most likely token id decoded with the tokenizer.",
        )
    ]


def _probability_problems(
    desc: Mapping | None, ref: Mapping, values: Mapping, upstream: Sequence[str]
) -> list[str]:
    """``most_likely_token_probability``: what kind of number it is, never its value."""
    label = "most_likely_token_probability"
    if kind_of(desc) == "missing":
        return [absence(label, desc, "look up the probability of the most likely token")]
    prob = _scalar_float(desc)
    if prob is None:
        return [problem("wrong_dtype", f"`{label}` should be a single number.")]
    want = ref["probability"]
    if math.isclose(prob, want, rel_tol=PROB_RTOL, abs_tol=1e-5):
        return []
    if math.isclose(prob, want * 100, rel_tol=PROB_RTOL, abs_tol=1e-3):
        return [
            problem(
                "percentage_not_fraction",
                f"`{label}` is a percentage; keep it a fraction between 0 and 1 (the `:.2%` "
                "format shows it as a percentage when you print it).",
            )
        ]
    if math.isclose(prob, ref["logit"], rel_tol=1e-3, abs_tol=LOGITS_TOL.atol):
        return [
            problem(
                "logit_not_probability",
                f"`{label}` is a logit, not a probability: read it from the probabilities.",
            )
        ]
    cause = upstream_problem(values, ref, [*upstream, "last_token_probabilities"])
    if cause:
        return [cause]
    if not 0 <= prob <= 1:
        return [
            problem(
                "probability_out_of_range",
                f"`{label}` is {fmt(prob)}, not a probability between 0 and 1.",
            )
        ]
    return [
        problem("wrong_value", f"`{label}` is not the probability of the most likely next token.")
    ]


def _scalar_float(desc: Mapping | None) -> float | None:
    kind = kind_of(desc)
    if kind == "scalar" and isinstance(desc.get("value"), int | float):
        return float(desc["value"])
    if kind == "tensor" and desc.get("floating") and math.prod(desc["shape"]) == 1:
        values = tensor_values(desc)
        return float(values.reshape(-1)[0]) if values is not None else None
    return None


_PERCENT = re.compile(r"(-?\d+(?:\.(\d+))?)\s*%")


def _printed_problems(printed: str, ref: Mapping) -> list[str]:
    """Step 4's output shows the phrase, the id, the token's repr and a 2-decimal percentage.

    Only what is missing or of the wrong kind is named, never the values to print.
    """
    problems = []
    if ref["phrase"] not in printed:
        problems.append(problem("output_incomplete", "The output does not show the phrase."))
    if not re.search(rf"(?<!\d){ref['argmax']}(?!\d)", printed):
        problems.append(
            problem("output_incomplete", "The output does not show the most likely token's id.")
        )
    if repr(ref["token"]) not in printed:
        problems.append(
            problem(
                "output_incomplete",
                "The output does not show the token's string in repr form (use !r).",
            )
        )
    want = ref["probability"] * 100
    shown = [(float(m.group(1)), m.group(2) or "") for m in _PERCENT.finditer(printed)]
    if not shown:
        problems.append(
            problem(
                "output_incomplete",
                "The output does not show the probability as a percentage with two decimals "
                "(like 12.34%).",
            )
        )
        return problems
    if any(abs(value - want) <= 0.0051 + 1e-9 and len(dec) == 2 for value, dec in shown):
        return problems
    if any(abs(value - want) <= 0.051 for value, _ in shown):
        problems.append(
            problem(
                "percentage_decimals",
                "The printed percentage needs exactly two decimals (`:.2%`).",
            )
        )
    elif any(math.isclose(value, want * 100, rel_tol=1e-3, abs_tol=0.01) for value, _ in shown):
        problems.append(
            problem(
                "percentage_times_100",
                "The printed percentage is 100 times too large: the `:.2%` format multiplies "
                "by 100 itself, so give it the fraction.",
            )
        )
    elif any(math.isclose(value, want / 100, rel_tol=1e-2, abs_tol=0.006) for value, _ in shown):
        problems.append(
            problem(
                "fraction_with_percent_sign",
                "The printed percentage is the fraction with a % sign after it: format the "
                "probability with `:.2%`, which turns it into a percentage.",
            )
        )
    else:
        problems.append(
            problem(
                "wrong_value",
                "The printed percentage is not the most likely token's probability (with two "
                "decimals).",
            )
        )
    return problems
