"""Automatic step checks: the student's objects, in their own kernel, against the engine.

A check has two halves:

1. **Kernel side.** :func:`inspection_snippet` builds Python source that runs silently in the
   student's kernel and binds a JSON digest of the student's objects to
   ``__workbook_result__``: type names, shapes, dtypes and values (tensors as base64
   little-endian float32 / int64), tables, and for step 6 the results of calling
   ``predict_next_tokens`` on phrases the student has not seen, with what it printed, the
   globals it reads and its comments. The snippet leaves no names behind, runs its own code
   with the real builtins (a student may have a variable called ``sum`` or ``list``) and
   reports, never raises, whatever the student's objects are.
2. **Server side.** :func:`reference_for` asks the ``LanguageModel`` for the same model and
   the student's own ``phrase``; :func:`compare` is a pure function of the digest and the
   reference and returns a :class:`CheckResult` whose message says in plain words what
   differs (shape, dtype, which entry) without revealing solution code.

:func:`run_check` ties both together for anything with an ``inspect(code)`` method.

The kernel-side functions live in :mod:`workbook.check_kernel`; this module holds the
requests, the references and the comparisons.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import tokenize
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from lm_engine import LMEngineError
from workbook import check_kernel, exercises
from workbook.errors import WorkbookError

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

# predict_next_tokens needs "a comment on what each step does"; a cleaned-up solution has
# at least this many steps worth a comment (tokenize, run, softmax, top-k, table).
MIN_COMMENTS = 3

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

# Tolerances for float32 results of the same weights computed in two processes (possibly
# on different devices and with different attention kernels).
_LOGITS_ATOL, _LOGITS_RTOL = 2e-3, 1e-3
_PROB_ATOL, _PROB_RTOL = 1e-5, 1e-3
# Tensors above this many elements travel as an evenly strided sample (a 20-token phrase of
# a 49k-vocabulary model is ~1M logits, 4 MB).
_MAX_VALUES = 1_200_000


class CheckError(WorkbookError):
    """A check cannot run: unknown step, or the kernel answered with something unusable."""


class Inspector(Protocol):
    """What a check needs from a kernel: run code silently, return ``__workbook_result__``."""

    def inspect(self, code: str) -> Any: ...


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a step's check.

    Attributes:
        passed: every part of the step matches the reference.
        message: what to tell the student, in plain words.
        details: every problem found, one sentence each (empty when passed).
    """

    passed: bool
    message: str
    details: tuple[str, ...] = field(default_factory=tuple)


# =========================================================================================
# What each step collects, its reference and its comparison.
# =========================================================================================


def _name(name: str, *rest: tuple[str, str]) -> list[list[str]]:
    return [["name", name], *[list(r) for r in rest]]


_REQUESTS: dict[str, dict] = {
    "step1": {
        "values": [
            ["phrase", _name("phrase")],
            ["batch", _name("batch")],
            ["batch['input_ids']", _name("batch", ("item", "input_ids"))],
            ["input_ids", _name("input_ids")],
        ]
    },
    "step2": {
        "values": [
            ["phrase", _name("phrase")],
            ["model_output", _name("model_output")],
            ["model_output.logits", _name("model_output", ("attr", "logits"))],
        ]
    },
    "step3": {
        "values": [
            ["phrase", _name("phrase")],
            ["last_token_logits", _name("last_token_logits")],
        ]
    },
    "step4": {
        "values": [
            ["phrase", _name("phrase")],
            ["last_token_probabilities", _name("last_token_probabilities")],
            ["most_likely_token_id", _name("most_likely_token_id")],
            ["most_likely_token", _name("most_likely_token")],
            ["most_likely_token_probability", _name("most_likely_token_probability")],
        ]
    },
    "step5": {
        "values": [
            ["phrase", _name("phrase")],
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
            "allowed_globals": list(exercises.ALLOWED_GLOBALS),
            "calls": [list(c) for c in UNSEEN_CALLS],
        },
    },
}


def _step_id(step: exercises.Step | str) -> str:
    step_id = step if isinstance(step, str) else step.id
    if step_id not in _REQUESTS:
        raise CheckError(f"Step {step_id!r} has no automatic check.")
    return step_id


def inspection_snippet(step: exercises.Step | str) -> str:
    """Python source that binds the step's digest to ``__workbook_result__`` in a kernel.

    Raises:
        CheckError: the step has no check.
    """
    step_id = _step_id(step)
    request = dict(_REQUESTS[step_id], step=step_id, max_values=_MAX_VALUES)
    return check_kernel.snippet(request)


# --- decoding the digest ---------------------------------------------------------------


def _tensor(desc: Mapping) -> torch.Tensor:
    """The (possibly strided) flat values of a tensor description."""
    raw = base64.b64decode(desc["data"])
    dtype = "<f4" if desc["encoding"] == "float32" else "<i8"
    return torch.from_numpy(np.frombuffer(raw, dtype=dtype).copy())


def _kind(desc: Mapping | None) -> str:
    return (desc or {}).get("kind", "missing")


def _short_type(desc: Mapping) -> str:
    return str(desc.get("type", "?")).rsplit(".", 1)[-1]


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _index(flat_index: int, shape: Sequence[int]) -> str:
    idx = np.unravel_index(flat_index, tuple(shape)) if shape else ()
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _absence(label: str, desc: Mapping | None, defined_in: str) -> str | None:
    """A problem sentence if ``label`` is missing or could not be read, else None."""
    kind = _kind(desc)
    if kind == "missing":
        where = (desc or {}).get("where", label)
        if "parent" in (desc or {}):
            return f"`{desc['parent']}` has no `{where[len(desc['parent']) :].lstrip('.')}`."
        return f"`{where}` is not defined yet: {defined_in}, then run the cell."
    if kind == "error":
        return f"Reading `{desc.get('where', label)}` failed with {desc.get('error')}."
    return None


def _tensor_problems(
    label: str,
    desc: Mapping,
    expected: torch.Tensor,
    *,
    integer: bool = False,
    atol: float = 0.0,
    rtol: float = 0.0,
    shape_hint: str = "",
) -> list[str]:
    """Compare a described tensor with ``expected``: type, dtype, shape, then values."""
    if _kind(desc) != "tensor":
        return [f"`{label}` is a {_short_type(desc)}, not a PyTorch tensor."]
    shape = list(desc["shape"])
    if integer and desc.get("floating"):
        return [f"`{label}` has dtype {desc['dtype']}; token ids are integers (torch.int64)."]
    if not integer and not desc.get("floating"):
        return [
            f"`{label}` has dtype {desc['dtype']}; expected floating-point numbers (torch.float32)."
        ]
    if shape != list(expected.shape):
        return [
            f"`{label}` has shape {_fmt_shape(shape)}; expected "
            f"{_fmt_shape(expected.shape)}{shape_hint}."
        ]
    if "data" not in desc:
        return [f"`{label}` could not be read ({desc['dtype']})."]
    got = _tensor(desc)
    stride = int(desc.get("stride", 1))
    want = expected.reshape(-1)[::stride]
    if integer:
        want = want.to(torch.int64)
        bad = (got != want).nonzero().reshape(-1)
    else:
        want = want.to(torch.float32)
        close = torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
        bad = (~close).nonzero().reshape(-1)
    if bad.numel() == 0:
        return []
    first = int(bad[0])
    where = _index(first * stride, shape)
    got_v, want_v = got[first].item(), want[first].item()
    if integer:
        values = f"{int(got_v)} instead of {int(want_v)}"
    else:
        values = f"{_fmt(got_v)} instead of {_fmt(want_v)}"
    dtype_note = ""
    if not integer and desc["dtype"] != "torch.float32":
        dtype_note = f" (its dtype is {desc['dtype']}; the reference is torch.float32)"
    return [
        f"`{label}` differs from the expected values in {bad.numel():,} of {got.numel():,} "
        f"entries{' checked' if stride > 1 else ''}; the first is at {where}: "
        f"{values}{dtype_note}."
    ]


def _phrase_problem(digest: Mapping) -> str | None:
    desc = digest["values"].get("phrase")
    absent = _absence("phrase", desc, "set it to a string in step 1")
    if absent:
        return absent
    if desc.get("kind") != "scalar" or not isinstance(desc.get("value"), str):
        return f"`phrase` is a {_short_type(desc)}; it should be a string (step 1)."
    if not desc["value"].strip():
        return "`phrase` is empty; type a phrase in step 1."
    if desc.get("truncated"):
        return "`phrase` is too long to check; use a phrase of a few sentences at most."
    return None


def _student_phrase(digest: Mapping) -> str | None:
    if _phrase_problem(digest) is not None:
        return None
    return digest["values"]["phrase"]["value"]


def _table_problems(
    label: str, desc: Mapping | None, expected: Any, *, what: str = "table"
) -> list[str]:
    """Compare a described DataFrame with the engine's top-k table (tokens, probabilities)."""
    if _kind(desc) != "dataframe":
        if _kind(desc) in ("missing", "error"):
            return [f"The {what} is missing."]
        return [f"The {what} is a {_short_type(desc)}, not a pandas DataFrame."]
    columns = desc["columns"]
    missing = [c for c in ("tokens", "probabilities") if c not in columns]
    if missing:
        return [
            f"The {what} has columns {columns}; it needs the columns 'tokens' and "
            f"'probabilities' (missing: {', '.join(missing)})."
        ]
    k = len(expected)
    if desc["n_rows"] != k:
        return [f"The {what} has {desc['n_rows']} rows; expected {k} (one per requested token)."]
    problems: list[str] = []
    tokens = desc["data"]["tokens"]
    want_tokens = list(expected["tokens"])
    for row, (got, want) in enumerate(zip(tokens, want_tokens, strict=False)):
        if not isinstance(got, str):
            problems.append(
                f"In the {what}, 'tokens' holds {_cell_text(got)} in row {row}; expected the "
                "decoded string of each token id."
            )
            break
        if got != want:
            problems.append(
                f"In the {what}, row {row} of 'tokens' is {got!r}; expected {want!r} "
                "(the tokens must be the most likely ones, decoded, most likely first)."
            )
            break
    probs = desc["data"]["probabilities"]
    want_probs = [float(p) for p in expected["probabilities"]]
    for row, (got, want) in enumerate(zip(probs, want_probs, strict=False)):
        if not isinstance(got, float):
            problems.append(
                f"In the {what}, 'probabilities' holds {_cell_text(got)} in row {row}; "
                "expected a number between 0 and 1."
            )
            break
        if not math.isclose(got, want, rel_tol=_PROB_RTOL, abs_tol=1e-4):
            hint = " (probabilities are between 0 and 1)" if got > 1 or got < 0 else ""
            problems.append(
                f"In the {what}, row {row} of 'probabilities' is {_fmt(got)}; expected "
                f"{_fmt(want)}{hint}."
            )
            break
    return problems


def _cell_text(cell: Any) -> str:
    if isinstance(cell, dict):
        return str(cell.get("other", cell))
    return repr(cell)


def _scalar_id(desc: Mapping | None) -> tuple[int | None, str | None]:
    """Read a token id given as an int or a one-element integer tensor."""
    kind = _kind(desc)
    if (
        kind == "scalar"
        and isinstance(desc.get("value"), int)
        and not isinstance(desc.get("value"), bool)
    ):
        return desc["value"], None
    if kind == "tensor":
        if desc.get("floating"):
            return None, f"has dtype {desc['dtype']}; a token id is an integer"
        if math.prod(desc["shape"]) != 1:
            return None, f"has shape {_fmt_shape(desc['shape'])}; expected a single token id"
        return int(_tensor(desc)[0]), None
    return None, f"is a {_short_type(desc or {})}; expected a token id (an integer)"


def _scalar_float(desc: Mapping | None) -> float | None:
    kind = _kind(desc)
    if kind == "scalar" and isinstance(desc.get("value"), int | float):
        return float(desc["value"])
    if kind == "tensor" and desc.get("floating") and math.prod(desc["shape"]) == 1:
        return float(_tensor(desc)[0])
    return None


# --- per-step references -----------------------------------------------------------------


class _EngineCache:
    """Recent answers of the engine, so a check costs no forward pass it already paid for.

    A student checks steps 2-5 one after the other on the same phrase, and step 6's phrases
    never change; each answer is computed once. Bounded by entries and bytes (long phrases
    have large logits). Values are never modified by the comparisons.
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 256 * 2**20) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple, tuple[Any, Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, lm: LanguageModel, key: tuple, compute: Callable[[], Any]) -> Any:
        full_key = (id(lm), *key)
        with self._lock:
            hit = self._items.get(full_key)
            if hit is not None and hit[0] is lm:  # the model object itself, not a reused id
                self._items.move_to_end(full_key)
                return hit[1]
        value = compute()
        size = value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 4096
        if size > self.max_bytes // 4:
            return value
        with self._lock:
            old = self._items.pop(full_key, None)
            self._bytes -= old[2] if old else 0
            # Holding lm keeps its id from being reused by another model while cached.
            self._items[full_key] = (lm, value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value


_CACHE = _EngineCache()


def _logits(lm: LanguageModel, phrase: str) -> torch.Tensor:
    return _CACHE.get(lm, ("logits", phrase), lambda: lm.logits(phrase))  # (1, n, V)


def _top_k(lm: LanguageModel, phrase: str, k: int) -> Any:
    return _CACHE.get(lm, ("top_k", phrase, k), lambda: lm.top_k(phrase, k=k))


def _ref_step1(lm: LanguageModel, phrase: str) -> dict:
    return {"input_ids": lm.encode(phrase)}  # (1, n)


def _ref_step2(lm: LanguageModel, phrase: str) -> dict:
    return {"logits": _logits(lm, phrase)}  # (1, n, V)


def _ref_step3(lm: LanguageModel, phrase: str) -> dict:
    return {"logits": _logits(lm, phrase)}  # (1, n, V); the check reads [0, -1] and the rest


def _ref_step4(lm: LanguageModel, phrase: str) -> dict:
    logits = _logits(lm, phrase)[0]  # (n, V)
    probabilities = torch.softmax(logits[-1], dim=-1)  # (V,)
    top = _top_k(lm, phrase, 10)  # the same table step 5 uses: one computation for both
    return {
        "logits": logits,
        "probabilities": probabilities,
        "argmax": int(top["token_ids"][0]),
        "token": str(top["tokens"][0]),
        "probability": float(top["probabilities"][0]),
    }


def _ref_step5(lm: LanguageModel, phrase: str) -> dict:
    table = _top_k(lm, phrase, 10)
    return {
        "probabilities": torch.softmax(_logits(lm, phrase)[0, -1], dim=-1),  # (V,)
        "table": table,
        "indices": torch.tensor(list(table["token_ids"]), dtype=torch.int64),  # (10,)
        "values": torch.tensor(list(table["probabilities"]), dtype=torch.float32),  # (10,)
    }


def _ref_step6(lm: LanguageModel, phrase: str | None) -> dict:
    return {"tables": [_top_k(lm, p, k) for p, k in UNSEEN_CALLS]}


_REFERENCES: dict[str, Callable[[LanguageModel, Any], dict]] = {
    "step1": _ref_step1,
    "step2": _ref_step2,
    "step3": _ref_step3,
    "step4": _ref_step4,
    "step5": _ref_step5,
    "step6": _ref_step6,
}


def reference_for(step: exercises.Step | str, lm: LanguageModel, digest: Mapping) -> dict:
    """The engine's reference for the step, for the student's own ``phrase``.

    Without a usable ``phrase`` in the digest (steps 1-5) the reference holds only the step
    id, and ``compare`` says what is wrong with the phrase.

    Raises:
        CheckError: the step has no check.
        lm_engine.LMEngineError: the engine rejects the phrase (the caller may show it).
    """
    step_id = _step_id(step)
    phrase = _student_phrase(digest)
    if step_id == "step6":
        return {"step": step_id, **_ref_step6(lm, phrase)}
    if phrase is None:
        return {"step": step_id}
    return {"step": step_id, "phrase": phrase, **_REFERENCES[step_id](lm, phrase)}


# --- per-step comparisons ----------------------------------------------------------------


def _cmp_step1(values: Mapping, ref: Mapping, printed: str | None) -> list[str]:
    expected = ref["input_ids"]  # (1, n)
    n = expected.shape[-1]
    problems: list[str] = []
    absent = _absence("batch", values.get("batch"), "call the tokenizer on `phrase`")
    if absent:
        problems.append(absent)
    elif _kind(values.get("batch['input_ids']")) == "missing":
        problems.append(
            "`batch` has no 'input_ids' entry: it should be what the tokenizer returns "
            "for `phrase`."
        )
    absent = _absence("input_ids", values.get("input_ids"), "take it out of `batch`")
    if absent:
        problems.append(absent)
        return problems
    desc = values["input_ids"]
    if _kind(desc) == "sequence" or _kind(desc) == "other":
        problems.append(
            f"`input_ids` is a {_short_type(desc)}, not a PyTorch tensor: ask the tokenizer "
            "for PyTorch tensors."
        )
        return problems
    problems += _tensor_problems(
        "input_ids",
        desc,
        expected,
        integer=True,
        shape_hint=f" (a batch of one phrase of {n} tokens)",
    )
    batch_ids = values.get("batch['input_ids']")
    if (
        not problems
        and _kind(batch_ids) == "tensor"
        and _tensor_problems("batch['input_ids']", batch_ids, expected, integer=True)
    ):
        problems.append("`batch` does not hold the token ids of the current `phrase`.")
    return problems


def _cmp_step2(values: Mapping, ref: Mapping, printed: str | None) -> list[str]:
    expected = ref["logits"]  # (1, n, V)
    n = expected.shape[1]
    absent = _absence("model_output", values.get("model_output"), "run the model on `input_ids`")
    if absent:
        return [absent]
    desc = values.get("model_output.logits")
    if _kind(desc) == "missing":
        return [
            f"`model_output` is a {_short_type(values['model_output'])} without `.logits`: "
            "it should be what the model returns."
        ]
    absent = _absence("model_output.logits", desc, "")
    if absent:
        return [absent]
    problems = _tensor_problems(
        "model_output.logits",
        desc,
        expected,
        atol=_LOGITS_ATOL,
        rtol=_LOGITS_RTOL,
        shape_hint=f" (1 phrase, {n} tokens of `phrase`, vocabulary size)",
    )
    if problems and desc.get("shape") == list(expected.shape):
        problems[0] += " Run the model on the `input_ids` of the current phrase."
    if not problems and printed is not None and _fmt_shape(expected.shape) not in printed:
        problems.append(
            f"The cell's output does not show the shape of `model_output.logits` as a list, "
            f"{_fmt_shape(expected.shape)}."
        )
    return problems


def _cmp_step3(values: Mapping, ref: Mapping, printed: str | None) -> list[str]:
    logits = ref["logits"][0]  # (n, V)
    n, v = logits.shape
    desc = values.get("last_token_logits")
    absent = _absence("last_token_logits", desc, "index `model_output.logits`")
    if absent:
        return [absent]
    return _position_problems("last_token_logits", desc, logits, v, n)


def _position_problems(
    label: str, desc: Mapping, logits: torch.Tensor, v: int, n: int
) -> list[str]:
    """Compare with the last position's logits; name the position if another was taken."""
    problems = _tensor_problems(
        label,
        desc,
        logits[-1],
        atol=_LOGITS_ATOL,
        rtol=_LOGITS_RTOL,
        shape_hint=f" (one score per vocabulary entry, {v:,})",
    )
    if not problems:
        return []
    if _kind(desc) == "tensor" and desc.get("floating") and desc["shape"] == [v]:
        got = _tensor(desc)
        for position in range(n - 1):
            if torch.allclose(got, logits[position], atol=_LOGITS_ATOL, rtol=_LOGITS_RTOL):
                return [
                    f"`{label}` holds the scores at token position {position} of {n} "
                    f"(counting from 0); we want the scores after the last token, "
                    f"position {n - 1}."
                ]
    if _kind(desc) == "tensor" and desc["shape"] == [1, v]:
        problems[0] += " It still has the batch dimension."
    return problems


def _cmp_step4(values: Mapping, ref: Mapping, printed: str | None) -> list[str]:
    problems: list[str] = []
    probs = ref["probabilities"]  # (V,)
    v = probs.shape[0]
    desc = values.get("last_token_probabilities")
    absent = _absence("last_token_probabilities", desc, "apply softmax to `last_token_logits`")
    if absent:
        problems.append(absent)
    else:
        found = _tensor_problems(
            "last_token_probabilities",
            desc,
            probs,
            atol=_PROB_ATOL,
            rtol=_PROB_RTOL,
            shape_hint=f" (one probability per vocabulary entry, {v:,})",
        )
        if found and desc.get("kind") == "tensor" and "data" in desc and desc.get("floating"):
            total = float(_tensor(desc).double().sum()) * int(desc.get("stride", 1))
            if desc["shape"] == [v] and torch.allclose(
                _tensor(desc), ref["logits"][-1], atol=_LOGITS_ATOL, rtol=_LOGITS_RTOL
            ):
                found = [
                    "`last_token_probabilities` still holds the logits: turn them into "
                    "probabilities with softmax."
                ]
            elif not math.isclose(total, 1.0, abs_tol=1e-3):
                found.append(
                    f"`last_token_probabilities` sums to {_fmt(total)}; a probability "
                    "distribution over the vocabulary sums to 1 (softmax over the last "
                    "dimension)."
                )
        problems += found
    want_id = ref["argmax"]
    desc = values.get("most_likely_token_id")
    absent = _absence("most_likely_token_id", desc, "take the argmax of the probabilities")
    if absent:
        problems.append(absent)
    else:
        got_id, why = _scalar_id(desc)
        if why:
            problems.append(f"`most_likely_token_id` {why}.")
        elif got_id != want_id:
            out_of_range = not 0 <= got_id < v
            problems.append(
                f"`most_likely_token_id` is {got_id}"
                + (
                    f", which is not a token id (the vocabulary has {v:,} entries): take the "
                    "argmax over the vocabulary only"
                    if out_of_range
                    else f", but the most likely next token is another one (id {want_id})"
                )
                + "."
            )
    desc = values.get("most_likely_token")
    if _kind(desc) == "scalar" and isinstance(desc.get("value"), str):
        if desc["value"] != ref["token"]:
            problems.append(
                f"`most_likely_token` is {desc['value']!r}; expected {ref['token']!r}, the "
                "most likely token id decoded with the tokenizer."
            )
    elif _kind(desc) not in ("missing",):
        problems.append(
            f"`most_likely_token` is a {_short_type(desc or {})}; expected the decoded string."
        )
    else:
        problems.append(_absence("most_likely_token", desc, "decode the token id"))
    prob = _scalar_float(values.get("most_likely_token_probability"))
    if _kind(values.get("most_likely_token_probability")) == "missing":
        problems.append(
            _absence(
                "most_likely_token_probability",
                values.get("most_likely_token_probability"),
                "look up the probability of the most likely token",
            )
        )
    elif prob is None:
        problems.append("`most_likely_token_probability` should be a single number.")
    elif not math.isclose(prob, ref["probability"], rel_tol=_PROB_RTOL, abs_tol=1e-5):
        problems.append(
            f"`most_likely_token_probability` is {_fmt(prob)}; expected {_fmt(ref['probability'])}."
        )
    if printed is not None:
        problems += _printed_problems(printed, ref)
    return problems


_PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")


def _printed_problems(printed: str, ref: Mapping) -> list[str]:
    """Step 4's output shows the phrase, the id, the token's repr and a 2-decimal percentage."""
    problems = []
    if ref["phrase"] not in printed:
        problems.append("The output does not show the phrase.")
    if not re.search(rf"(?<!\d){ref['argmax']}(?!\d)", printed):
        problems.append(f"The output does not show the token id ({ref['argmax']}).")
    if repr(ref["token"]) not in printed:
        problems.append("The output does not show the token's string in repr form (use !r).")
    want = round(ref["probability"] * 100, 2)
    shown = [float(m) for m in _PERCENT.findall(printed)]
    if not shown:
        problems.append(
            "The output does not show the probability as a percentage with two decimals "
            f"(like {want:.2f}%)."
        )
    elif not any(abs(s - want) <= 0.011 for s in shown):
        problems.append(
            f"The printed probability ({shown[0]:.2f}%) differs from the expected {want:.2f}%."
        )
    return problems


def _cmp_step5(values: Mapping, ref: Mapping, printed: str | None) -> list[str]:
    problems: list[str] = []
    desc = values.get("most_likely_tokens")
    absent = _absence("most_likely_tokens", desc, "use topk on the probabilities")
    if absent:
        return [absent]
    indices = values.get("most_likely_tokens.indices")
    if _kind(indices) == "missing":
        return [
            f"`most_likely_tokens` is a {_short_type(desc)} without `.indices` and `.values`: "
            "it should be what topk returns."
        ]
    k = len(ref["indices"])
    found = _tensor_problems(
        "most_likely_tokens.indices",
        indices,
        ref["indices"],
        integer=True,
        shape_hint=f" (the top {k})",
    )
    if found and _kind(indices) == "tensor" and indices["shape"] == [k] and "data" in indices:
        # Tied probabilities may be ordered either way: accept ids whose probability matches.
        got_ids = _tensor(indices)
        if bool(((got_ids >= 0) & (got_ids < ref["probabilities"].shape[0])).all()):
            got_probs = ref["probabilities"][got_ids]
            if torch.allclose(got_probs, ref["values"], atol=1e-7, rtol=0):
                found = []
    problems += found
    values_desc = values.get("most_likely_tokens.values")
    wrong_values = _kind(values_desc) == "tensor" and _tensor_problems(
        "most_likely_tokens.values", values_desc, ref["values"], atol=_PROB_ATOL, rtol=_PROB_RTOL
    )
    if not found and wrong_values:
        problems.append(
            "`most_likely_tokens.values` are not the probabilities of those tokens: "
            "use topk on the probabilities, not on the logits."
        )
    table = values.get("most_likely_tokens_df")
    absent = _absence("most_likely_tokens_df", table, "build the table with pandas")
    if absent:
        problems.append(absent)
    else:
        problems += _table_problems(
            "most_likely_tokens_df", table, ref["table"], what="table `most_likely_tokens_df`"
        )
    return problems


def _cmp_step6(function: Mapping | None, ref: Mapping, starter_comments: set[str]) -> list[str]:
    kind = _kind(function)
    if kind == "missing":
        return [
            "`predict_next_tokens` is not defined yet: define it with `def`, then run the cell."
        ]
    if kind == "not_function":
        return [
            f"`predict_next_tokens` is a {_short_type(function)}; define it as a function "
            "with `def predict_next_tokens(phrase, k):`."
        ]
    problems: list[str] = []
    # A function that reads globals also gets the unseen phrases wrong; the cause comes first.
    used = function.get("globals_used") or []
    if used:
        problems.append(
            "`predict_next_tokens` reads global variables it should not: "
            f"{', '.join(used)}. Inside the function, use its arguments and values it computes "
            f"itself (allowed: {', '.join(exercises.ALLOWED_GLOBALS)})."
        )
    printed = displayed = None  # reported once, for the first call that did it
    for call, expected in zip(function["calls"], ref["tables"], strict=True):
        shown = f"predict_next_tokens({_clip(call['phrase'])!r}, {call['k']})"
        if "error" in call:
            problems.append(f"`{shown}` raised {call['error']}.")
            continue
        problems += _table_problems(
            "result", call.get("result"), expected, what=f"result of `{shown}`"
        )
        if printed is None and call.get("stdout", "").strip():
            printed = (
                f"`{shown}` printed {_clip(call['stdout'].strip(), 60)!r}: the function "
                "should only return the table and print nothing."
            )
        if displayed is None and call.get("displays"):
            displayed = (
                f"`{shown}` displayed output itself: the function should only return the table."
            )
    problems += [p for p in (printed, displayed) if p]
    comments = function.get("comments")
    if comments is None:
        problems.append(
            "The source of `predict_next_tokens` could not be read to look for comments; "
            "define the function in this cell and run it again."
        )
    else:
        own = [c for c in comments if c.strip() not in starter_comments and _is_real_comment(c)]
        if len(own) < MIN_COMMENTS:
            problems.append(
                f"`predict_next_tokens` has {len(own)} comment{'s' if len(own) != 1 else ''}; "
                f"add a short # comment on what each step does (at least {MIN_COMMENTS})."
            )
    return problems


def _is_real_comment(comment: str) -> bool:
    return sum(ch.isalpha() for ch in comment) >= 3


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _starter_comments(step_id: str) -> set[str]:
    code = exercises.step(step_id).starter_code
    comments = set()
    try:
        for token in tokenize.generate_tokens(StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                comments.add(token.string.strip())
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments


_COMPARE: dict[str, Callable[[Mapping, Mapping, str | None], list[str]]] = {
    "step1": _cmp_step1,
    "step2": _cmp_step2,
    "step3": _cmp_step3,
    "step4": _cmp_step4,
    "step5": _cmp_step5,
}

# Every check id the exercise may name (a test asserts each step's check is here).
CHECKS: frozenset[str] = frozenset(_REQUESTS)

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
        return _result(["The check could not read your kernel's variables; run the cell again."])
    step_id = digest["step"]
    if reference.get("step") != step_id:
        raise CheckError(f"reference is for {reference.get('step')!r}, digest for {step_id!r}")
    if step_id == "step6":
        problems = _cmp_step6(digest.get("function"), reference, _starter_comments("step6"))
        return _result(problems, _PASS_MESSAGES[step_id])
    phrase_problem = _phrase_problem(digest)
    if phrase_problem or "phrase" not in reference:
        return _result([phrase_problem or "`phrase` could not be read."])
    problems = _COMPARE[step_id](digest["values"], reference, printed)
    return _result([p for p in problems if p], _PASS_MESSAGES[step_id])


def _result(problems: list[str], passed_message: str = "") -> CheckResult:
    if not problems:
        return CheckResult(passed=True, message=f"Check passed. {passed_message}".strip())
    shown = problems[:3]
    more = len(problems) - len(shown)
    message = "Not yet:\n" + "\n".join(f"- {p}" for p in shown)
    if more:
        message += f"\n- ... and {more} more."
    return CheckResult(passed=False, message=message, details=tuple(problems))


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
    step: exercises.Step | str,
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
    step_id = _step_id(step)
    digest = kernel.inspect(inspection_snippet(step_id))
    if not isinstance(digest, Mapping) or digest.get("step") != step_id:
        return _result(["The check could not read your kernel's variables; run the cell again."])
    try:
        reference = reference_for(step_id, lm, digest)
        return compare(digest, reference, printed=printed_text(outputs))
    except LMEngineError as exc:
        return _result([f"The model cannot score your phrase: {exc}."])
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        # Only a digest that is not what the snippet builds gets here (e.g. a student who
        # replaced json or exec in their kernel): say so rather than break the page.
        return _result(
            [
                f"The check could not read your kernel's variables ({type(exc).__name__}); "
                "restart the kernel and run the cells again."
            ]
        )
