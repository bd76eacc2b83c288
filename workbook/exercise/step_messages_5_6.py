"""Steps 5 and 6's comparisons and their messages: the top-k table and ``predict_next_tokens``.

Step 5 compares ``most_likely_tokens`` and the table ``most_likely_tokens_df``; step 6 calls
the student's function on phrases and values of ``k`` they have not seen and compares each
returned table the same way, then looks at what the function reads, prints and comments.
"""

from __future__ import annotations

import functools
import math
import tokenize
from collections.abc import Mapping, Sequence, Set
from io import StringIO
from typing import Any

import torch

from workbook.exercise import content
from workbook.exercise.cause_ids import problem
from workbook.exercise.causes import upstream_problem
from workbook.exercise.digest import a_type, absence, clip, fmt, kind_of, tensor_values
from workbook.exercise.tensors import LOGITS_TOL, PROB_RTOL, PROBS_TOL, same, tensor_problems

# predict_next_tokens needs "a comment on what each step does"; a cleaned-up solution has
# at least this many steps worth a comment (tokenize, run, softmax, top-k, table).
MIN_COMMENTS = 3


def cmp_step5(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    problems: list[str] = []
    desc = values.get("most_likely_tokens")
    absent = absence("most_likely_tokens", desc, "use topk on the probabilities")
    if absent:
        return [absent]
    indices = values.get("most_likely_tokens.indices")
    if kind_of(indices) == "missing":
        return [
            problem(
                "not_defined",
                f"`most_likely_tokens` is {a_type(desc)} without `.indices` and `.values`: "
                "it should be what topk returns.",
            )
        ]
    k = len(ref["indices"])
    found = tensor_problems(
        "most_likely_tokens.indices",
        indices,
        ref["indices"],
        integer=True,
        shape_hint=f" (the top {k})",
    )
    got_ids = tensor_values(indices)
    probs = ref["probabilities"]  # (V,)
    valid = (
        found
        and got_ids is not None
        and list(got_ids.shape) == [k]
        and not indices.get("floating")
        and bool(((got_ids >= 0) & (got_ids < probs.shape[0])).all())
    )
    upstream = ["input_ids", "model_output.logits", "last_token_logits", "last_token_probabilities"]
    cause = upstream_problem(values, ref, upstream) if found else None
    if valid:
        found = _indices_cause(got_ids, values, ref) or ([cause] if cause else found)
    problems += found
    values_desc = values.get("most_likely_tokens.values")
    if not found and kind_of(values_desc) == "tensor" and values_desc.get("floating"):
        if same(values_desc, ref["values"], PROBS_TOL):
            pass
        elif same(values_desc, torch.tensor(ref["table"]["logits"]), LOGITS_TOL):
            # The course's own solution takes topk of the logits: the same tokens, and the
            # table's probabilities are looked up afterwards. Right, so a note, not a failure.
            notes.append(
                "Note: you took topk of the logits, so `most_likely_tokens.values` are "
                "logits; the tokens are the same, as softmax keeps the order. Your table's "
                "probabilities are what count."
            )
        else:
            problems.append(
                problem(
                    "wrong_value",
                    "`most_likely_tokens.values` are neither the probabilities nor the logits "
                    "of those tokens: take topk of `last_token_probabilities`.",
                )
            )
    table = values.get("most_likely_tokens_df")
    absent = absence("most_likely_tokens_df", table, "build the table with pandas")
    if absent:
        problems.append(absent)
    else:
        problems += _table_problems(table, ref["table"], what="table `most_likely_tokens_df`")
    if problems and not found:
        cause = upstream_problem(values, ref, upstream)
        if cause:  # the table was built from variables of an older phrase
            problems = [cause, *problems]
    return problems


def _indices_cause(got_ids: torch.Tensor, values: Mapping, ref: Mapping) -> list[str] | None:
    """Why the top-k ids differ (or ``[]`` when they are right up to ties)."""
    probs = ref["probabilities"]  # (V,)
    want = ref["indices"]
    # Tied probabilities may be ordered either way: accept ids whose probability matches.
    if torch.allclose(probs[got_ids], ref["values"], atol=1e-7, rtol=0):
        return []
    if set(got_ids.tolist()) == set(want.tolist()):
        return [
            problem(
                "wrong_order",
                "`most_likely_tokens.indices` are the right tokens in another order: most "
                "likely first (topk sorts them that way unless told not to).",
            )
        ]
    least = torch.topk(probs, len(want), largest=False).indices
    if set(got_ids.tolist()) == set(least.tolist()):
        return [
            problem(
                "least_likely",
                "`most_likely_tokens.indices` are the *least* likely tokens, not the most likely.",
            )
        ]
    logits = ref["logits"][0]  # (n, V)
    for position in range(logits.shape[0] - 1):
        if set(got_ids.tolist()) == set(torch.topk(logits[position], len(want)).indices.tolist()):
            return [
                problem(
                    "wrong_position",
                    f"`most_likely_tokens.indices` are the top tokens after position "
                    f"{position}; we want those after the last token.",
                )
            ]
    return None


def _table_problems(desc: Mapping | None, expected: Mapping, *, what: str) -> list[str]:
    """Compare a described DataFrame with the engine's top-k table (tokens, probabilities).

    Says which row and what kind of value is wrong, never the expected token or number.
    """
    if kind_of(desc) != "dataframe":
        if kind_of(desc) in ("missing", "error"):
            return [problem("table_not_dataframe", f"The {what} is missing.")]
        return [
            problem(
                "table_not_dataframe",
                f"The {what} is {a_type(desc or {})}, not a pandas DataFrame.",
            )
        ]
    columns = desc["columns"]
    missing = [c for c in ("tokens", "probabilities") if c not in columns]
    if missing:
        return [
            problem(
                "table_columns",
                f"The {what} has columns {columns}; it needs the columns 'tokens' and "
                f"'probabilities' (missing: {', '.join(missing)}).",
            )
        ]
    k = len(expected["tokens"])
    if desc["n_rows"] != k:
        return [
            problem(
                "table_row_count",
                f"The {what} has {desc['n_rows']} rows; expected {k} (one per requested token).",
            )
        ]
    return _token_column_problems(desc["data"]["tokens"], expected, what) + _prob_column_problems(
        desc["data"]["probabilities"], expected, what
    )


def _token_column_problems(tokens: list, expected: Mapping, what: str) -> list[str]:
    want = expected["tokens"]
    if tokens == want:
        return []
    for row, got in enumerate(tokens):
        if not isinstance(got, str):
            kind = (
                "a token id" if isinstance(got, float) and float(got).is_integer() else "not text"
            )
            return [
                problem(
                    "tokens_not_text",
                    f"In the {what}, 'tokens' holds {_cell_text(got)} in row {row} ({kind}); "
                    "expected the decoded string of each token id.",
                )
            ]
    if tokens == expected["raw_tokens"] or (
        tokens[0] == expected["raw_tokens"][0] and expected["raw_tokens"][0] != want[0]
    ):
        return [
            problem(
                "raw_vocab_entry",
                f"In the {what}, 'tokens' holds the vocabulary's raw entries (its internal "
                "spelling, with a marker for a leading space): decode each id with the "
                "tokenizer.",
            )
        ]
    if sorted(tokens) == sorted(want):
        return [
            problem(
                "wrong_order",
                f"In the {what}, 'tokens' are the right ones in another order: most likely first.",
            )
        ]
    row = next(i for i, (a, b) in enumerate(zip(tokens, want, strict=False)) if a != b)
    return [
        problem(
            "wrong_value",
            f"In the {what}, row {row} of 'tokens' is {clip(tokens[row], 30)!r}, which is not "
            f"the {_ordinal(row + 1)} most likely next token (decoded, most likely first).",
        )
    ]


def _prob_column_problems(probs: list, expected: Mapping, what: str) -> list[str]:
    want = expected["probabilities"]
    for row, (got, good) in enumerate(zip(probs, want, strict=False)):
        if not isinstance(got, float):
            return [
                problem(
                    "probabilities_not_numbers",
                    f"In the {what}, 'probabilities' holds {_cell_text(got)} in row {row}; "
                    "expected a number between 0 and 1.",
                )
            ]
        if math.isclose(got, good, rel_tol=PROB_RTOL, abs_tol=1e-4):
            continue
        if math.isclose(got, good * 100, rel_tol=PROB_RTOL, abs_tol=1e-2):
            return [
                problem(
                    "percentage_not_fraction",
                    f"In the {what}, 'probabilities' are percentages (row {row} and on); keep "
                    "them fractions between 0 and 1.",
                )
            ]
        if math.isclose(got, expected["logits"][row], rel_tol=1e-3, abs_tol=LOGITS_TOL.atol):
            return [
                problem(
                    "logit_not_probability",
                    f"In the {what}, 'probabilities' are logits: look each token's probability "
                    "up in the probabilities, not in the logits.",
                )
            ]
        hint = ", which is not between 0 and 1" if not 0 <= got <= 1 else ""
        return [
            problem(
                "probability_out_of_range" if hint else "wrong_value",
                f"In the {what}, row {row} of 'probabilities' is {fmt(got)}{hint}: it is not "
                "the probability of that row's token.",
            )
        ]
    return []


def _cell_text(cell: Any) -> str:
    if isinstance(cell, dict):
        return str(cell.get("other", cell))
    return repr(cell)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def cmp_step6(function: Mapping | None, ref: Mapping, starter_comments: Set[str]) -> list[str]:
    kind = kind_of(function)
    if kind == "missing":
        return [
            problem(
                "not_defined",
                "`predict_next_tokens` is not defined yet: define it with `def`, then run the "
                "cell.",
            )
        ]
    if kind == "not_function":
        return [
            problem(
                "not_a_function",
                f"`predict_next_tokens` is {a_type(function)}; define it as a function "
                "with `def predict_next_tokens(phrase, k):`.",
            )
        ]
    problems: list[str] = []
    # A function that reads globals also gets the unseen phrases wrong; the cause comes first.
    used = function.get("globals_used") or []
    if used:
        problems.append(
            problem(
                "reads_globals",
                "`predict_next_tokens` reads global variables it should not: "
                f"{', '.join(used)}. Inside the function, use its arguments and values it "
                f"computes itself (allowed: {', '.join(content.ALLOWED_GLOBALS)}).",
            )
        )
    printed = displayed = None  # reported once, for the first call that did it
    wrong_tables: list[str] = []
    for call, expected in zip(function["calls"], ref["tables"], strict=True):
        shown = f"predict_next_tokens({clip(call['phrase'])!r}, {call['k']})"
        if "error" in call:
            cause, hint = _error_hint(call["error"])
            problems.append(problem(cause, f"`{shown}` raised {call['error']}." + hint))
            continue
        wrong_tables += _table_problems(call.get("result"), expected, what=f"result of `{shown}`")
        if printed is None and call.get("stdout", "").strip():
            printed = problem(
                "prints_output",
                f"`{shown}` printed {clip(call['stdout'].strip(), 60)!r}: the function "
                "should only return the table and print nothing.",
            )
        if displayed is None and call.get("displays"):
            displayed = problem(
                "prints_output",
                f"`{shown}` displayed output itself: the function should only return the table.",
            )
    if wrong_tables and not used:  # wrong tables: say which argument it ignores, if it does
        problems += _ignored_arguments(function["calls"])
    problems += wrong_tables
    problems += [p for p in (printed, displayed) if p]
    comments = function.get("comments")
    if comments is None:
        problems.append(
            problem(
                "source_unreadable",
                "The source of `predict_next_tokens` could not be read to look for comments; "
                "define the function in this cell and run it again.",
            )
        )
    else:
        own = [c for c in comments if c.strip() not in starter_comments and _is_real_comment(c)]
        if len(own) < MIN_COMMENTS:
            plural = "s" if len(own) != 1 else ""
            problems.append(
                problem(
                    "too_few_comments",
                    f"`predict_next_tokens` has {len(own)} comment{plural}; "
                    f"add a short # comment on what each step does (at least {MIN_COMMENTS}).",
                )
            )
    return problems


def _ignored_arguments(calls: Sequence[Mapping]) -> list[str]:
    """Name an argument the function ignores: the same rows for every k, or every phrase."""
    tables = [c.get("result") for c in calls if "error" not in c]
    if len(tables) != len(calls) or any(kind_of(t) != "dataframe" for t in tables):
        return []
    problems = []
    if len({t["n_rows"] for t in tables}) == 1 and len({c["k"] for c in calls}) > 1:
        problems.append(
            problem(
                "ignores_k",
                f"`predict_next_tokens` returns {tables[0]['n_rows']} rows whatever `k` is: use "
                "its argument `k` for the number of tokens.",
            )
        )
    tokens = [tuple(t["data"].get("tokens", ())[:1]) for t in tables]
    if len(set(tokens)) == 1 and len({c["phrase"] for c in calls}) > 1:
        problems.append(
            problem(
                "ignores_phrase",
                "`predict_next_tokens` gives the same most likely token for every phrase: use "
                "its argument `phrase`, not a variable from an earlier cell.",
            )
        )
    return problems


def _error_hint(error: str) -> tuple[str, str]:
    """The cause id and a hint for the errors a function typically raises on new phrases."""
    if "requires grad" in error:
        return "tracks_gradients", (
            " The probabilities still track gradients: compute them inside "
            "`with torch.no_grad():`, as in step 2."
        )
    if error.startswith("NameError"):
        return "undefined_name", (
            " The function uses a name it does not define: compute everything from its "
            "arguments inside the function."
        )
    return "function_raises", ""


def _is_real_comment(comment: str) -> bool:
    return sum(ch.isalpha() for ch in comment) >= 3


@functools.cache  # the starter code never changes: tokenize it once, not on every check
def starter_code_comments(step_id: str) -> frozenset[str]:
    """The comments of the step's starter code (not the student's own)."""
    code = content.step(step_id).starter_code
    comments = set()
    try:
        for token in tokenize.generate_tokens(StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                comments.add(token.string.strip())
    except (tokenize.TokenError, SyntaxError):
        pass
    return frozenset(comments)
