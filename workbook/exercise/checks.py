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

:func:`run_check` ties both together for anything with an ``inspect(code)`` method.
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
from workbook.errors import WorkbookError
from workbook.exercise import check_kernel, content

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


@dataclass(frozen=True)
class _Tolerance:
    """How close the student's float32 values must be to the reference's.

    Attributes:
        atol, rtol: per entry, for tensors that travel whole and for a row's max and min.
        rms_atol, rms_rtol: for summarised rows, on the root mean square of the difference
            (estimated from the sketches), relative to the reference row's root mean square.
    """

    atol: float
    rtol: float
    rms_atol: float
    rms_rtol: float


# The same weights in two processes give equal logits on one CPU (measured: 0.0 difference
# between 1 and 2 threads); the tolerances leave room for another device or attention
# kernel in the engine. Per entry as before; a summarised logits row must agree to about
# 1e-3 in root mean square, which still catches a single logit changed by ~0.7.
_LOGITS_TOL = _Tolerance(atol=2e-3, rtol=1e-3, rms_atol=5e-4, rms_rtol=2e-4)
_PROBS_TOL = _Tolerance(atol=1e-5, rtol=1e-3, rms_atol=1e-6, rms_rtol=2e-3)
_PROB_RTOL = 1e-3  # single probabilities and table cells
# Tensors of at most this many elements travel whole (token ids, top-k results, a tiny
# model's logits); larger floating tensors travel as per-row summaries.
_FULL_LIMIT = 4096
_INT_LIMIT = 65_536  # integer tensors (token ids) travel whole up to this many elements
_SKETCH_SIZE = 16  # projections per row: the sketch's estimate is within ~+-35% (chi2, 16)


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
        message: what to tell the student, in plain words (with any notes when passed).
        details: every problem found, one sentence each (empty when passed).
    """

    passed: bool
    message: str
    details: tuple[str, ...] = field(default_factory=tuple)


# =========================================================================================
# What each step collects.
# =========================================================================================


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


def _step_id(step: content.Step | str) -> str:
    step_id = step if isinstance(step, str) else step.id
    if step_id not in _REQUESTS:
        raise CheckError(f"Step {step_id!r} has no automatic check.")
    return step_id


def inspection_snippet(step: content.Step | str) -> str:
    """Python source that binds the step's digest to ``__workbook_result__`` in a kernel.

    Raises:
        CheckError: the step has no check.
    """
    step_id = _step_id(step)
    request = dict(
        _REQUESTS[step_id],
        step=step_id,
        full_limit=_FULL_LIMIT,
        int_limit=_INT_LIMIT,
        sketch=_SKETCH_SIZE,
    )
    return check_kernel.snippet(request)


# =========================================================================================
# Reading the digest.
# =========================================================================================


def _kind(desc: Mapping | None) -> str:
    return (desc or {}).get("kind", "missing")


def _short_type(desc: Mapping) -> str:
    return str(desc.get("type", "?")).rsplit(".", 1)[-1]


# Type names said letter by letter, so they take "an" although they start with a consonant.
_SPELLED = ("ndarray", "nd", "fp", "mps", "rng", "lstm")


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an int", "an ndarray", "a list"."""
    vowel_sound = word[:1].lower() in "aeiou" or word.lower().startswith(_SPELLED)
    return f"{'an' if vowel_sound else 'a'} {word}"


def _a_type(desc: Mapping) -> str:
    return _a(_short_type(desc))


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _index(flat_index: int, shape: Sequence[int]) -> str:
    idx = np.unravel_index(flat_index, tuple(shape)) if shape else ()
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _values(desc: Mapping | None) -> torch.Tensor | None:
    """A whole tensor that travelled whole, in its shape (float32 or int64); else None."""
    if _kind(desc) != "tensor" or "data" not in desc or desc.get("truncated"):
        return None
    raw = base64.b64decode(desc["data"])
    dtype = "<f4" if desc["encoding"] == "float32" else "<i8"
    flat = torch.from_numpy(np.frombuffer(raw, dtype=dtype).copy())
    return flat.reshape(desc["shape"])


@dataclass(frozen=True)
class _Rows:
    """Per-row summary of a tensor (rows = its last dimension), from either side."""

    columns: int
    mean: np.ndarray
    rms: np.ndarray
    max: np.ndarray
    argmax: np.ndarray
    min: np.ndarray
    sketch: np.ndarray  # (rows, _SKETCH_SIZE)
    nonfinite: int

    @classmethod
    def from_summary(cls, summary: Mapping) -> _Rows:
        def arr(key: str) -> np.ndarray:
            return np.asarray(summary.get(key, []), dtype=np.float64)

        return cls(
            columns=int(summary["columns"]),
            mean=arr("mean"),
            rms=arr("rms"),
            max=arr("max"),
            argmax=np.asarray(summary.get("argmax", []), dtype=np.int64),
            min=arr("min"),
            sketch=arr("sketch").reshape(len(summary.get("mean", [])), -1),
            nonfinite=int(summary.get("nonfinite", 0)),
        )

    @classmethod
    def of(cls, tensor: torch.Tensor) -> _Rows:
        """The summary of a server-side tensor: the kernel's own code, run here."""
        return cls.from_summary(check_kernel._k_summary(tensor.float(), _SKETCH_SIZE))

    def __len__(self) -> int:
        return len(self.mean)

    def sum(self, row: int) -> float:
        return float(self.mean[row]) * self.columns

    def matches(self, row: int, other: _Rows, other_row: int, tol: _Tolerance) -> bool:
        """Whether row ``row`` equals ``other``'s row ``other_row`` within ``tol``."""
        if self.columns != other.columns or self.nonfinite or other.nonfinite:
            return False
        scale = tol.rms_atol + tol.rms_rtol * float(other.rms[other_row])
        difference = self.sketch[row] - other.sketch[other_row]
        if math.sqrt(float(np.mean(difference**2))) > scale:
            return False
        if abs(self.mean[row] - other.mean[other_row]) > scale:
            return False
        if abs(self.rms[row] - other.rms[other_row]) > scale:
            return False
        for mine, theirs in (
            (self.max[row], other.max[other_row]),
            (self.min[row], other.min[other_row]),
        ):
            if abs(mine - theirs) > tol.atol + tol.rtol * abs(theirs):
                return False
        return True

    def mismatched_rows(self, other: _Rows, tol: _Tolerance) -> list[int]:
        return [i for i in range(len(self)) if not self.matches(i, other, i, tol)]


def _rows(desc: Mapping | None) -> _Rows | None:
    """The student's tensor as a per-row summary (computed here if it travelled whole)."""
    if _kind(desc) != "tensor":
        return None
    if "summary" in desc:
        return _Rows.from_summary(desc["summary"]) if "mean" in desc["summary"] else None
    values = _values(desc)
    if values is None or values.numel() == 0:
        return None
    return _Rows.of(values.float())


def _same(
    desc: Mapping | None,
    expected: torch.Tensor,
    tol: _Tolerance | None,
    expected_rows: _Rows | None = None,
) -> bool:
    """Whether the described tensor equals ``expected`` (exactly for ints, else within tol)."""
    if _kind(desc) != "tensor" or list(desc["shape"]) != list(expected.shape):
        return False
    values = _values(desc)
    if values is not None:
        if tol is None:
            return bool(torch.equal(values.to(torch.int64), expected.to(torch.int64)))
        want = expected.to(torch.float32)
        return bool(torch.isclose(values.float(), want, rtol=tol.rtol, atol=tol.atol).all())
    if tol is None:
        return False
    mine = _rows(desc)
    if mine is None:
        return False
    theirs = expected_rows if expected_rows is not None else _Rows.of(expected)
    return len(mine) == len(theirs) and not mine.mismatched_rows(theirs, tol)


def _where_it_differs(desc: Mapping, expected: torch.Tensor, tol: _Tolerance | None) -> str:
    """Where the described tensor differs from ``expected`` (no values: they are the answer)."""
    shape = list(desc["shape"])
    values = _values(desc)
    if values is not None:
        got = values.reshape(-1)
        want = expected.reshape(-1)
        if tol is None:
            bad = (got.to(torch.int64) != want.to(torch.int64)).nonzero().reshape(-1)
        else:
            close = torch.isclose(got.float(), want.float(), rtol=tol.rtol, atol=tol.atol)
            bad = (~close).nonzero().reshape(-1)
        if bad.numel() == 0:
            return ""
        return (
            f"in {bad.numel():,} of {got.numel():,} entries; the first is at "
            f"{_index(int(bad[0]), shape)}"
        )
    mine, theirs = _rows(desc), _Rows.of(expected)
    if mine is None or tol is None:
        return ""
    bad_rows = mine.mismatched_rows(theirs, tol)
    if not bad_rows:
        return ""
    lead = np.unravel_index(bad_rows[0], tuple(shape[:-1])) if len(shape) > 1 else ()
    first = "[" + ", ".join([*(str(int(i)) for i in lead), ":"]) + "]"
    return (
        f"in {len(bad_rows):,} of {len(mine):,} rows along the last dimension; the first is {first}"
    )


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
    tol: _Tolerance | None = None,
    shape_hint: str = "",
    expected_rows: _Rows | None = None,
) -> list[str]:
    """Compare a described tensor with ``expected``: type, dtype, shape, then values.

    The message says where the values differ, never what they should be.
    """
    if _kind(desc) != "tensor":
        return [f"`{label}` is {_a_type(desc)}, not a PyTorch tensor."]
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
    if "data" not in desc and "summary" not in desc:
        return [f"`{label}` could not be read ({desc['dtype']})."]
    summary = desc.get("summary") or {}
    if summary.get("nonfinite"):
        return [f"`{label}` contains NaN or infinite values."]
    if _same(desc, expected, None if integer else tol, expected_rows):
        return []
    where = _where_it_differs(desc, expected, None if integer else tol)
    dtype_note = ""
    if not integer and desc["dtype"] != "torch.float32":
        dtype_note = f" (its dtype is {desc['dtype']}; the reference is torch.float32)"
    where = f" {where}" if where else ""
    return [f"`{label}` differs from the expected values{where}{dtype_note}."]


def _phrase_problem(digest: Mapping) -> str | None:
    desc = digest["values"].get("phrase")
    absent = _absence("phrase", desc, "set it to a string in step 1")
    if absent:
        return absent
    if desc.get("kind") != "scalar" or not isinstance(desc.get("value"), str):
        return f"`phrase` is {_a_type(desc)}; it should be a string (step 1)."
    if not desc["value"].strip():
        return "`phrase` is empty; type a phrase in step 1."
    if desc.get("truncated"):
        return "`phrase` is too long to check; use a phrase of a few sentences at most."
    return None


def _student_phrase(digest: Mapping) -> str | None:
    if _phrase_problem(digest) is not None:
        return None
    return digest["values"]["phrase"]["value"]


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
        values = _values(desc)
        return (int(values.reshape(-1)[0]), None) if values is not None else (None, "is unreadable")
    return None, f"is {_a_type(desc or {})}; expected a token id (an integer)"


def _scalar_float(desc: Mapping | None) -> float | None:
    kind = _kind(desc)
    if kind == "scalar" and isinstance(desc.get("value"), int | float):
        return float(desc["value"])
    if kind == "tensor" and desc.get("floating") and math.prod(desc["shape"]) == 1:
        values = _values(desc)
        return float(values.reshape(-1)[0]) if values is not None else None
    return None


# =========================================================================================
# The engine's references.
# =========================================================================================


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


def _logits_rows(lm: LanguageModel, phrase: str) -> _Rows:
    """The summary of the phrase's logits: one row per position."""
    return _CACHE.get(lm, ("rows", phrase), lambda: _Rows.of(_logits(lm, phrase)))


def _top_k(lm: LanguageModel, phrase: str, k: int) -> Any:
    return _CACHE.get(lm, ("top_k", phrase, k), lambda: lm.top_k(phrase, k=k))


def _raw_tokens(lm: LanguageModel, ids: Sequence[int]) -> list[str]:
    """The vocabulary's own spelling of each id (e.g. 'Ġgo'): what decoding turns into text."""
    return [str(t) for t in lm.tokenizer.convert_ids_to_tokens([int(i) for i in ids])]


def _table_reference(lm: LanguageModel, phrase: str, k: int) -> dict:
    """The top-k table and what a wrong table is often made of instead."""
    table = _top_k(lm, phrase, k)
    ids = [int(i) for i in table["token_ids"]]
    return {
        "tokens": [str(t) for t in table["tokens"]],
        "probabilities": [float(p) for p in table["probabilities"]],
        "logits": [float(x) for x in table["logits"]],
        "raw_tokens": _raw_tokens(lm, ids),
        "ids": ids,
    }


def _ones_logits(lm: LanguageModel, n: int) -> torch.Tensor:
    """Logits of a sequence of n ids 1: what the model returns when given the attention mask."""

    def compute() -> torch.Tensor:
        ones = torch.ones((1, n), dtype=torch.int64, device=lm.device)
        with torch.no_grad():
            return lm.model(ones).logits.float().cpu()  # (1, n, V)

    return _CACHE.get(lm, ("ones", n), compute)


def _common_reference(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    """What every step 1-5 compares with: the ids, and the text of the student's own ids."""
    ref: dict[str, Any] = {"input_ids": lm.encode(phrase)}  # (1, n)
    # The phrase as its own ids decode (a tokenizer may normalise case or spaces), to
    # compare with the student's ids decoded.
    ref["phrase_text"] = lm.tokenizer.decode(ref["input_ids"].reshape(-1).tolist())
    ids = _values(digest["values"].get("input_ids"))
    if ids is not None and not ids.is_floating_point() and ids.dim() in (1, 2) and ids.numel():
        flat = ids.reshape(-1)
        if bool(((flat >= 0) & (flat < lm.vocab_size)).all()):
            ref["ids_text"] = lm.tokenizer.decode(flat.tolist())
    return ref


def _ref_step1(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    return _common_reference(lm, phrase, digest)


def _ref_logits(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    logits = _logits(lm, phrase)  # (1, n, V)
    return {
        **_common_reference(lm, phrase, digest),
        "logits": logits,
        "logits_rows": _logits_rows(lm, phrase),
        # Costly alternatives, computed only when a comparison needs them.
        "ones_logits": lambda: _ones_logits(lm, logits.shape[1]),
    }


def _ref_step4(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    ref = _ref_logits(lm, phrase, digest)
    last = ref["logits"][0, -1]  # (V,)
    table = _table_reference(lm, phrase, 10)  # the same table step 5 uses: one computation
    ref.update(
        probabilities=torch.softmax(last, dim=-1),  # (V,)
        argmax=table["ids"][0],
        argmin=int(last.argmin()),
        token=table["tokens"][0],
        raw_token=table["raw_tokens"][0],
        probability=table["probabilities"][0],
        logit=table["logits"][0],
    )
    got_id, _ = _scalar_id(digest["values"].get("most_likely_token_id"))
    if got_id is not None and 0 <= got_id < lm.vocab_size:
        ref["id_token"] = lm.tokenizer.decode([got_id])
    return ref


def _ref_step5(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    ref = _ref_logits(lm, phrase, digest)
    table = _table_reference(lm, phrase, 10)
    ref.update(
        probabilities=torch.softmax(ref["logits"][0, -1], dim=-1),  # (V,)
        table=table,
        indices=torch.tensor(table["ids"], dtype=torch.int64),  # (10,)
        values=torch.tensor(table["probabilities"], dtype=torch.float32),  # (10,)
    )
    return ref


def _ref_step6(lm: LanguageModel) -> dict:
    return {"tables": [_table_reference(lm, p, k) for p, k in UNSEEN_CALLS]}


_REFERENCES: dict[str, Callable[[LanguageModel, str, Mapping], dict]] = {
    "step1": _ref_step1,
    "step2": _ref_logits,
    "step3": _ref_logits,
    "step4": _ref_step4,
    "step5": _ref_step5,
}


def reference_for(step: content.Step | str, lm: LanguageModel, digest: Mapping) -> dict:
    """The engine's reference for the step, for the student's own ``phrase``.

    Without a usable ``phrase`` in the digest (steps 1-5) the reference holds only the step
    id, and ``compare`` says what is wrong with the phrase. Besides tensors the reference
    may hold zero-argument functions for costly alternatives (e.g. the logits of the
    attention mask run as ids) that ``compare`` calls only when the values differ.

    Raises:
        CheckError: the step has no check.
        lm_engine.LMEngineError: the engine rejects the phrase (the caller may show it).
    """
    step_id = _step_id(step)
    if step_id == "step6":
        return {"step": step_id, **_ref_step6(lm)}
    phrase = _student_phrase(digest)
    if phrase is None:
        return {"step": step_id}
    return {"step": step_id, "phrase": phrase, **_REFERENCES[step_id](lm, phrase, digest)}


# =========================================================================================
# Causes: a variable of an earlier step that does not belong to the current phrase.
# =========================================================================================

_RUN_IN_ORDER = (
    "Run the steps in order from step {step} (or press Run all above on this step), then this one."
)


def _ids_problem(values: Mapping, ref: Mapping) -> str | None:
    """Why ``input_ids`` are not the current phrase's, if they are not (None otherwise)."""
    desc = values.get("input_ids")
    if _kind(desc) != "tensor" or desc.get("floating"):
        return None
    if _same(desc, ref["input_ids"], None):
        return None
    old = ref.get("ids_text")
    if old is not None and old != ref["phrase_text"]:
        return (
            f"Your `input_ids` are the tokens of {_clip(old, 60)!r}, but `phrase` is now "
            f"{_clip(ref['phrase'], 60)!r}: the later variables come from an older phrase. "
            + _RUN_IN_ORDER.format(step=1)
        )
    return (
        "Your `input_ids` are not the tokenizer's ids for the current `phrase`. "
        + _RUN_IN_ORDER.format(step=1)
    )


def _upstream_problem(values: Mapping, ref: Mapping, names: Sequence[str]) -> str | None:
    """The first variable of an earlier step (in ``names``) that does not fit the phrase.

    Only variables that exist and are tensors are judged; a missing one is the own
    comparison's business.
    """
    for name in names:
        desc = values.get(name)
        if _kind(desc) != "tensor":
            continue
        if name == "input_ids":
            problem = _ids_problem(values, ref)
            if problem:
                return problem
        elif name == "model_output.logits":
            if not _same(desc, ref["logits"], _LOGITS_TOL, ref["logits_rows"]):
                return (
                    "Your `model_output` (step 2) does not belong to the current `phrase`: "
                    "it was computed before `phrase` or `input_ids` changed, or step 2 does "
                    "not pass yet. " + _RUN_IN_ORDER.format(step=2)
                )
        elif name == "last_token_logits":
            if not _same(desc, ref["logits"][0, -1], _LOGITS_TOL):
                return (
                    "Your `last_token_logits` (step 3) do not belong to the current "
                    "`phrase`, or step 3 does not pass yet. " + _RUN_IN_ORDER.format(step=3)
                )
        elif name == "last_token_probabilities" and not _same(
            desc, ref["probabilities"], _PROBS_TOL
        ):
            return (
                "Your `last_token_probabilities` (step 4) do not belong to the current "
                "`phrase`, or step 4 does not pass yet. " + _RUN_IN_ORDER.format(step=4)
            )
    return None


def _matching_position(desc: Mapping, logits_rows: _Rows) -> int | None:
    """The position whose logits row the 1-D tensor ``desc`` equals, if any."""
    mine = _rows(desc)
    if mine is None or len(mine) != 1:
        return None
    for position in range(len(logits_rows)):
        if mine.matches(0, logits_rows, position, _LOGITS_TOL):
            return position
    return None


def _looks_like_probabilities(desc: Mapping) -> bool:
    """Non-negative and summing to 1 along the last dimension (softmax already applied)."""
    mine = _rows(desc)
    if mine is None or not len(mine) or mine.nonfinite:
        return False
    return bool(
        (mine.min >= 0).all()
        and all(math.isclose(mine.sum(i), 1.0, abs_tol=1e-3) for i in range(len(mine)))
    )


_GRAD_WHY = (
    "Without it PyTorch records every operation of the forward pass and keeps the "
    "intermediate results in memory, to be able to compute gradients for training; to read "
    "predictions we never need them, so they only cost memory and time."
)


# =========================================================================================
# Per-step comparisons: each returns its problems and may add notes for a passed check.
# =========================================================================================


def _cmp_step1(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    expected = ref["input_ids"]  # (1, n)
    n = expected.shape[-1]
    problems: list[str] = []
    absent = _absence("batch", values.get("batch"), "call the tokenizer on `phrase`")
    if absent:
        problems.append(absent)
    elif _kind(values.get("batch['input_ids']")) == "missing":
        problems.append(
            f"`batch` is {_a_type(values['batch'])} without an 'input_ids' entry: it should "
            "be what the tokenizer returns for `phrase`."
        )
    desc = values.get("input_ids")
    absent = _absence("input_ids", desc, "take it out of `batch`")
    if absent:
        problems.append(absent)
        return problems
    kind_problem = _not_a_tensor_of_ids(desc)
    if kind_problem:
        problems.append(kind_problem)
        return problems
    found = _tensor_problems(
        "input_ids",
        desc,
        expected,
        integer=True,
        shape_hint=f" (a batch of one phrase of {n} tokens)",
    )
    if found and _kind(desc) == "tensor" and not desc.get("floating"):
        mask = values.get("batch['attention_mask']")
        ones = _values(desc)
        if (
            ones is not None
            and ones.numel()
            and bool((ones == 1).all())
            and not bool((expected == 1).all())
        ):
            where = " (`batch['attention_mask']`)" if _kind(mask) == "tensor" else ""
            found = [
                f"`input_ids` holds only 1s: that is the attention mask{where}, which marks "
                "every token as real. Take the token ids, the 'input_ids' entry of `batch`."
            ]
        elif len(desc["shape"]) == 2 and desc["shape"][0] == 1:
            old = ref.get("ids_text")
            if old is not None and old != ref["phrase_text"]:
                found = [
                    f"`input_ids` are the tokens of {_clip(old, 60)!r}, not of `phrase` "
                    f"({_clip(ref['phrase'], 60)!r}): tokenize `phrase` itself, in this cell."
                ]
    problems += found
    batch_ids = values.get("batch['input_ids']")
    if not problems and _kind(batch_ids) == "tensor" and not _same(batch_ids, expected, None):
        problems.append("`batch` does not hold the token ids of the current `phrase`.")
    return problems


def _not_a_tensor_of_ids(desc: Mapping) -> str | None:
    """What to do when ``input_ids`` is not a tensor: each wrong type has its own remedy."""
    kind, short = _kind(desc), _short_type(desc)
    if kind == "tensor":
        return None
    if short == "BatchEncoding" or kind == "mapping":
        return (
            f"`input_ids` is the whole {short} the tokenizer returned (it holds the token ids "
            "and the attention mask). Take only its 'input_ids' entry."
        )
    if short == "Encoding":
        return (
            "`input_ids` is an Encoding, the fast tokenizer's record of one phrase; take "
            "the 'input_ids' entry of `batch` instead."
        )
    if short == "ndarray":
        return (
            "`input_ids` is an ndarray (NumPy), not a PyTorch tensor: ask the tokenizer for "
            "PyTorch tensors (the `return_tensors` argument)."
        )
    if kind == "sequence":
        return (
            f"`input_ids` is {_a(short)}, not a PyTorch tensor: ask the tokenizer for "
            "PyTorch tensors (the `return_tensors` argument)."
        )
    return f"`input_ids` is {_a(short)}, not a PyTorch tensor of token ids."


def _cmp_step2(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    expected = ref["logits"]  # (1, n, V)
    n = expected.shape[1]
    absent = _absence("model_output", values.get("model_output"), "run the model on `input_ids`")
    if absent:
        return [absent]
    desc = values.get("model_output.logits")
    if _kind(desc) == "missing":
        return [
            f"`model_output` is {_a_type(values['model_output'])} without `.logits`: "
            "it should be what the model returns."
        ]
    absent = _absence("model_output.logits", desc, "")
    if absent:
        return [absent]
    problems = _tensor_problems(
        "model_output.logits",
        desc,
        expected,
        tol=_LOGITS_TOL,
        shape_hint=f" (1 phrase, {n} tokens of `phrase`, vocabulary size)",
        expected_rows=ref["logits_rows"],
    )
    if problems and _kind(desc) == "tensor":
        cause = _upstream_problem(values, ref, ["input_ids"])
        same_shape = desc["shape"] == list(expected.shape)
        if cause:
            problems = [cause]
        elif same_shape and desc.get("floating") and _same(desc, ref["ones_logits"](), _LOGITS_TOL):
            problems = [
                "`model_output.logits` are the model's scores for a sequence of 1s: the "
                "model was given the attention mask instead of the token ids. Run it on "
                "`input_ids`."
            ]
        elif same_shape:
            problems[0] += " Run the model on the `input_ids` of the current phrase."
    if _kind(desc) == "tensor" and (desc.get("requires_grad") or desc.get("grad_fn")):
        problems.append(
            "`model_output.logits` tracks gradients (requires_grad=True): run the model "
            "inside `with torch.no_grad():`. " + _GRAD_WHY
        )
    if not problems and printed is not None and _fmt_shape(expected.shape) not in printed:
        if "torch.Size(" in printed:
            problems.append(
                "The cell prints the shape as a torch.Size; print it as a list (convert it "
                "with `list(...)`)."
            )
        else:
            problems.append(
                "The cell's output does not show the shape of `model_output.logits` as a list."
            )
    return problems


def _cmp_step3(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    logits = ref["logits"][0]  # (n, V)
    n, v = logits.shape
    desc = values.get("last_token_logits")
    absent = _absence("last_token_logits", desc, "index `model_output.logits`")
    if absent:
        return [absent]
    problems = _tensor_problems(
        "last_token_logits",
        desc,
        logits[-1],
        tol=_LOGITS_TOL,
        shape_hint=f" (one score per vocabulary entry, {v:,})",
    )
    if not problems or _kind(desc) != "tensor":
        return problems
    if desc["shape"] == [1, v]:
        return [problems[0] + " It still has the batch dimension."]
    if desc["shape"] == [n, v]:
        return [problems[0] + " It holds the scores at every position: pick the last one."]
    if desc["shape"] != [v] or not desc.get("floating"):
        return problems
    return _scores_cause("last_token_logits", desc, values, ref) or problems


def _scores_cause(label: str, desc: Mapping, values: Mapping, ref: Mapping) -> list[str]:
    """Why a (V,) tensor of scores is not the last position's logits, when the digest says."""
    logits_rows: _Rows = ref["logits_rows"]
    n = len(logits_rows)
    last = ref["logits"][0, -1]
    if _looks_like_probabilities(desc) or _same(desc, torch.softmax(last, -1), _PROBS_TOL):
        return [
            f"`{label}` already holds probabilities (they sum to 1): softmax belongs to "
            "step 4. Keep the raw scores, the logits, here."
        ]
    if _same(desc, torch.log_softmax(last, -1), _LOGITS_TOL):
        return [f"`{label}` holds log-probabilities (log_softmax); keep the raw logits here."]
    position = _matching_position(desc, logits_rows)
    if position is not None and position != n - 1:
        return [
            f"`{label}` holds the scores at token position {position} of {n} (counting from "
            f"0); we want the scores after the last token, position {n - 1}."
        ]
    cause = _upstream_problem(values, ref, ["input_ids", "model_output.logits"])
    return [cause] if cause else []


def _cmp_step4(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    problems: list[str] = []
    probs = ref["probabilities"]  # (V,)
    v = probs.shape[0]
    upstream = ["input_ids", "model_output.logits", "last_token_logits"]
    desc = values.get("last_token_probabilities")
    absent = _absence("last_token_probabilities", desc, "apply softmax to `last_token_logits`")
    if absent:
        problems.append(absent)
    else:
        found = _tensor_problems(
            "last_token_probabilities",
            desc,
            probs,
            tol=_PROBS_TOL,
            shape_hint=f" (one probability per vocabulary entry, {v:,})",
        )
        if found and _kind(desc) == "tensor" and desc.get("floating") and desc["shape"] == [v]:
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
    if _same(desc, last, _LOGITS_TOL):
        return [
            "`last_token_probabilities` still holds the logits: turn them into "
            "probabilities with softmax."
        ]
    if _same(desc, torch.log_softmax(last, -1), _LOGITS_TOL):
        return [
            "`last_token_probabilities` holds log-probabilities (log_softmax, all negative); "
            "use softmax."
        ]
    if _looks_like_probabilities(values.get("last_token_logits")):
        return [
            "Softmax was applied twice: your `last_token_logits` already sum to 1, so "
            "softmax was applied in step 3. Keep the raw logits in step 3, run it again, "
            "then this step."
        ]
    cause = _upstream_problem(values, ref, upstream)
    if cause:
        return [cause]
    mine = _rows(desc)
    if mine is not None and len(mine) == 1 and not math.isclose(mine.sum(0), 1.0, abs_tol=1e-3):
        return [
            f"`last_token_probabilities` sums to {_fmt(mine.sum(0))}; a probability "
            "distribution over the vocabulary sums to 1 (softmax over the last dimension)."
        ]
    rows_all = ref["logits"][0]  # (n, V)
    for position in range(rows_all.shape[0] - 1):
        if _same(desc, torch.softmax(rows_all[position], -1), _PROBS_TOL):
            return [
                f"`last_token_probabilities` are the probabilities after token position "
                f"{position}; we want those after the last token."
            ]
    return []


def _argmax_problems(values: Mapping, ref: Mapping, upstream: Sequence[str]) -> list[str]:
    """``most_likely_token_id``: what kind of id it is, never which id it should be."""
    v = ref["probabilities"].shape[0]
    desc = values.get("most_likely_token_id")
    absent = _absence("most_likely_token_id", desc, "take the argmax of the probabilities")
    if absent:
        return [absent]
    got_id, why = _scalar_id(desc)
    if why:
        return [f"`most_likely_token_id` {why}."]
    if got_id == ref["argmax"]:
        return []
    if not 0 <= got_id < v:
        return [
            f"`most_likely_token_id` is {got_id}, which is not a token id (the vocabulary has "
            f"{v:,} entries): take the argmax over the vocabulary only."
        ]
    if got_id == ref["argmin"]:
        return ["`most_likely_token_id` is the *least* likely next token: argmax, not argmin."]
    cause = _upstream_problem(values, ref, [*upstream, "last_token_probabilities"])
    if cause:
        return [cause]
    argmax_by_position = [int(i) for i in ref["logits_rows"].argmax]
    for position, token_id in enumerate(argmax_by_position[:-1]):
        if got_id == token_id:
            return [
                f"`most_likely_token_id` is the most likely token after position {position}; "
                "we want the one after the last token."
            ]
    return [
        "`most_likely_token_id` is not the id of the most likely next token: take the argmax "
        "of `last_token_probabilities`."
    ]


def _token_problems(desc: Mapping | None, ref: Mapping) -> list[str]:
    """``most_likely_token``: the kind of string it is, never the string it should be."""
    if _kind(desc) == "missing":
        return [_absence("most_likely_token", desc, "decode the token id")]
    if _kind(desc) != "scalar" or not isinstance(desc.get("value"), str):
        return [f"`most_likely_token` is {_a_type(desc or {})}; expected the decoded string."]
    got = desc["value"]
    if got == ref["token"]:
        return []
    if "id_token" in ref and got == ref["id_token"]:
        return []  # decoded right, from a wrong id: the id's own problem says why
    if got.strip().lstrip("[").rstrip("]").strip().isdigit():
        return [
            "`most_likely_token` is the id written as text: decode the id with the tokenizer "
            "to get the token's string."
        ]
    if got == ref["raw_token"] and got != ref["token"]:
        return [
            "`most_likely_token` is the vocabulary's raw entry (its internal spelling, with a "
            "marker for a leading space): decode the id with the tokenizer to get the text."
        ]
    return ["`most_likely_token` is not the most likely token id decoded with the tokenizer."]


def _probability_problems(
    desc: Mapping | None, ref: Mapping, values: Mapping, upstream: Sequence[str]
) -> list[str]:
    """``most_likely_token_probability``: what kind of number it is, never its value."""
    label = "most_likely_token_probability"
    if _kind(desc) == "missing":
        return [_absence(label, desc, "look up the probability of the most likely token")]
    prob = _scalar_float(desc)
    if prob is None:
        return [f"`{label}` should be a single number."]
    want = ref["probability"]
    if math.isclose(prob, want, rel_tol=_PROB_RTOL, abs_tol=1e-5):
        return []
    if math.isclose(prob, want * 100, rel_tol=_PROB_RTOL, abs_tol=1e-3):
        return [
            f"`{label}` is a percentage; keep it a fraction between 0 and 1 (the `:.2%` "
            "format shows it as a percentage when you print it)."
        ]
    if math.isclose(prob, ref["logit"], rel_tol=1e-3, abs_tol=_LOGITS_TOL.atol):
        return [f"`{label}` is a logit, not a probability: read it from the probabilities."]
    cause = _upstream_problem(values, ref, [*upstream, "last_token_probabilities"])
    if cause:
        return [cause]
    if not 0 <= prob <= 1:
        return [f"`{label}` is {_fmt(prob)}, not a probability between 0 and 1."]
    return [f"`{label}` is not the probability of the most likely next token."]


_PERCENT = re.compile(r"(-?\d+(?:\.(\d+))?)\s*%")


def _printed_problems(printed: str, ref: Mapping) -> list[str]:
    """Step 4's output shows the phrase, the id, the token's repr and a 2-decimal percentage.

    Only what is missing or of the wrong kind is named, never the values to print.
    """
    problems = []
    if ref["phrase"] not in printed:
        problems.append("The output does not show the phrase.")
    if not re.search(rf"(?<!\d){ref['argmax']}(?!\d)", printed):
        problems.append("The output does not show the most likely token's id.")
    if repr(ref["token"]) not in printed:
        problems.append("The output does not show the token's string in repr form (use !r).")
    want = ref["probability"] * 100
    shown = [(float(m.group(1)), m.group(2) or "") for m in _PERCENT.finditer(printed)]
    if not shown:
        problems.append(
            "The output does not show the probability as a percentage with two decimals "
            "(like 12.34%)."
        )
        return problems
    if any(abs(value - want) <= 0.0051 + 1e-9 and len(dec) == 2 for value, dec in shown):
        return problems
    if any(abs(value - want) <= 0.051 for value, _ in shown):
        problems.append("The printed percentage needs exactly two decimals (`:.2%`).")
    elif any(math.isclose(value, want * 100, rel_tol=1e-3, abs_tol=0.01) for value, _ in shown):
        problems.append(
            "The printed percentage is 100 times too large: the `:.2%` format multiplies by "
            "100 itself, so give it the fraction."
        )
    elif any(math.isclose(value, want / 100, rel_tol=1e-2, abs_tol=0.006) for value, _ in shown):
        problems.append(
            "The printed percentage is the fraction with a % sign after it: format the "
            "probability with `:.2%`, which turns it into a percentage."
        )
    else:
        problems.append(
            "The printed percentage is not the most likely token's probability (with two decimals)."
        )
    return problems


def _cmp_step5(values: Mapping, ref: Mapping, printed: str | None, notes: list[str]) -> list[str]:
    problems: list[str] = []
    desc = values.get("most_likely_tokens")
    absent = _absence("most_likely_tokens", desc, "use topk on the probabilities")
    if absent:
        return [absent]
    indices = values.get("most_likely_tokens.indices")
    if _kind(indices) == "missing":
        return [
            f"`most_likely_tokens` is {_a_type(desc)} without `.indices` and `.values`: "
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
    got_ids = _values(indices)
    probs = ref["probabilities"]  # (V,)
    valid = (
        found
        and got_ids is not None
        and list(got_ids.shape) == [k]
        and not indices.get("floating")
        and bool(((got_ids >= 0) & (got_ids < probs.shape[0])).all())
    )
    upstream = ["input_ids", "model_output.logits", "last_token_logits", "last_token_probabilities"]
    cause = _upstream_problem(values, ref, upstream) if found else None
    if valid:
        found = _indices_cause(got_ids, values, ref) or ([cause] if cause else found)
    problems += found
    values_desc = values.get("most_likely_tokens.values")
    if not found and _kind(values_desc) == "tensor" and values_desc.get("floating"):
        if _same(values_desc, ref["values"], _PROBS_TOL):
            pass
        elif _same(values_desc, torch.tensor(ref["table"]["logits"]), _LOGITS_TOL):
            # The course's own solution takes topk of the logits: the same tokens, and the
            # table's probabilities are looked up afterwards. Right, so a note, not a failure.
            notes.append(
                "Note: you took topk of the logits, so `most_likely_tokens.values` are "
                "logits; the tokens are the same, as softmax keeps the order. Your table's "
                "probabilities are what count."
            )
        else:
            problems.append(
                "`most_likely_tokens.values` are neither the probabilities nor the logits of "
                "those tokens: take topk of `last_token_probabilities`."
            )
    table = values.get("most_likely_tokens_df")
    absent = _absence("most_likely_tokens_df", table, "build the table with pandas")
    if absent:
        problems.append(absent)
    else:
        problems += _table_problems(table, ref["table"], what="table `most_likely_tokens_df`")
    if problems and not found:
        cause = _upstream_problem(values, ref, upstream)
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
            "`most_likely_tokens.indices` are the right tokens in another order: most likely "
            "first (topk sorts them that way unless told not to)."
        ]
    least = torch.topk(probs, len(want), largest=False).indices
    if set(got_ids.tolist()) == set(least.tolist()):
        return ["`most_likely_tokens.indices` are the *least* likely tokens, not the most likely."]
    logits = ref["logits"][0]  # (n, V)
    for position in range(logits.shape[0] - 1):
        if set(got_ids.tolist()) == set(torch.topk(logits[position], len(want)).indices.tolist()):
            return [
                f"`most_likely_tokens.indices` are the top tokens after position {position}; "
                "we want those after the last token."
            ]
    return None


def _table_problems(desc: Mapping | None, expected: Mapping, *, what: str) -> list[str]:
    """Compare a described DataFrame with the engine's top-k table (tokens, probabilities).

    Says which row and what kind of value is wrong, never the expected token or number.
    """
    if _kind(desc) != "dataframe":
        if _kind(desc) in ("missing", "error"):
            return [f"The {what} is missing."]
        return [f"The {what} is {_a_type(desc or {})}, not a pandas DataFrame."]
    columns = desc["columns"]
    missing = [c for c in ("tokens", "probabilities") if c not in columns]
    if missing:
        return [
            f"The {what} has columns {columns}; it needs the columns 'tokens' and "
            f"'probabilities' (missing: {', '.join(missing)})."
        ]
    k = len(expected["tokens"])
    if desc["n_rows"] != k:
        return [f"The {what} has {desc['n_rows']} rows; expected {k} (one per requested token)."]
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
                f"In the {what}, 'tokens' holds {_cell_text(got)} in row {row} ({kind}); "
                "expected the decoded string of each token id."
            ]
    if tokens == expected["raw_tokens"] or (
        tokens[0] == expected["raw_tokens"][0] and expected["raw_tokens"][0] != want[0]
    ):
        return [
            f"In the {what}, 'tokens' holds the vocabulary's raw entries (its internal "
            "spelling, with a marker for a leading space): decode each id with the tokenizer."
        ]
    if sorted(tokens) == sorted(want):
        return [f"In the {what}, 'tokens' are the right ones in another order: most likely first."]
    row = next(i for i, (a, b) in enumerate(zip(tokens, want, strict=False)) if a != b)
    return [
        f"In the {what}, row {row} of 'tokens' is {_clip(tokens[row], 30)!r}, which is not the "
        f"{_ordinal(row + 1)} most likely next token (decoded, most likely first)."
    ]


def _prob_column_problems(probs: list, expected: Mapping, what: str) -> list[str]:
    want = expected["probabilities"]
    for row, (got, good) in enumerate(zip(probs, want, strict=False)):
        if not isinstance(got, float):
            return [
                f"In the {what}, 'probabilities' holds {_cell_text(got)} in row {row}; "
                "expected a number between 0 and 1."
            ]
        if math.isclose(got, good, rel_tol=_PROB_RTOL, abs_tol=1e-4):
            continue
        if math.isclose(got, good * 100, rel_tol=_PROB_RTOL, abs_tol=1e-2):
            return [
                f"In the {what}, 'probabilities' are percentages (row {row} and on); keep "
                "them fractions between 0 and 1."
            ]
        if math.isclose(got, expected["logits"][row], rel_tol=1e-3, abs_tol=_LOGITS_TOL.atol):
            return [
                f"In the {what}, 'probabilities' are logits: look each token's probability "
                "up in the probabilities, not in the logits."
            ]
        hint = ", which is not between 0 and 1" if not 0 <= got <= 1 else ""
        return [
            f"In the {what}, row {row} of 'probabilities' is {_fmt(got)}{hint}: it is not "
            "the probability of that row's token."
        ]
    return []


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _cmp_step6(function: Mapping | None, ref: Mapping, starter_comments: set[str]) -> list[str]:
    kind = _kind(function)
    if kind == "missing":
        return [
            "`predict_next_tokens` is not defined yet: define it with `def`, then run the cell."
        ]
    if kind == "not_function":
        return [
            f"`predict_next_tokens` is {_a_type(function)}; define it as a function "
            "with `def predict_next_tokens(phrase, k):`."
        ]
    problems: list[str] = []
    # A function that reads globals also gets the unseen phrases wrong; the cause comes first.
    used = function.get("globals_used") or []
    if used:
        problems.append(
            "`predict_next_tokens` reads global variables it should not: "
            f"{', '.join(used)}. Inside the function, use its arguments and values it computes "
            f"itself (allowed: {', '.join(content.ALLOWED_GLOBALS)})."
        )
    printed = displayed = None  # reported once, for the first call that did it
    wrong_tables: list[str] = []
    for call, expected in zip(function["calls"], ref["tables"], strict=True):
        shown = f"predict_next_tokens({_clip(call['phrase'])!r}, {call['k']})"
        if "error" in call:
            problems.append(f"`{shown}` raised {call['error']}." + _error_hint(call["error"]))
            continue
        wrong_tables += _table_problems(call.get("result"), expected, what=f"result of `{shown}`")
        if printed is None and call.get("stdout", "").strip():
            printed = (
                f"`{shown}` printed {_clip(call['stdout'].strip(), 60)!r}: the function "
                "should only return the table and print nothing."
            )
        if displayed is None and call.get("displays"):
            displayed = (
                f"`{shown}` displayed output itself: the function should only return the table."
            )
    if wrong_tables and not used:  # wrong tables: say which argument it ignores, if it does
        problems += _ignored_arguments(function["calls"])
    problems += wrong_tables
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


def _ignored_arguments(calls: Sequence[Mapping]) -> list[str]:
    """Name an argument the function ignores: the same rows for every k, or every phrase."""
    tables = [c.get("result") for c in calls if "error" not in c]
    if len(tables) != len(calls) or any(_kind(t) != "dataframe" for t in tables):
        return []
    problems = []
    if len({t["n_rows"] for t in tables}) == 1 and len({c["k"] for c in calls}) > 1:
        problems.append(
            f"`predict_next_tokens` returns {tables[0]['n_rows']} rows whatever `k` is: use "
            "its argument `k` for the number of tokens."
        )
    tokens = [tuple(t["data"].get("tokens", ())[:1]) for t in tables]
    if len(set(tokens)) == 1 and len({c["phrase"] for c in calls}) > 1:
        problems.append(
            "`predict_next_tokens` gives the same most likely token for every phrase: use its "
            "argument `phrase`, not a variable from an earlier cell."
        )
    return problems


def _error_hint(error: str) -> str:
    """A cause for the errors a function typically raises on new phrases."""
    if "requires grad" in error:
        return (
            " The probabilities still track gradients: compute them inside "
            "`with torch.no_grad():`, as in step 2."
        )
    if error.startswith("NameError"):
        return (
            " The function uses a name it does not define: compute everything from its "
            "arguments inside the function."
        )
    return ""


def _is_real_comment(comment: str) -> bool:
    return sum(ch.isalpha() for ch in comment) >= 3


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _starter_comments(step_id: str) -> set[str]:
    code = content.step(step_id).starter_code
    comments = set()
    try:
        for token in tokenize.generate_tokens(StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                comments.add(token.string.strip())
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments


_COMPARE: dict[str, Callable[[Mapping, Mapping, str | None, list[str]], list[str]]] = {
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
    notes: list[str] = []
    problems = _COMPARE[step_id](digest["values"], reference, printed, notes)
    return _result([p for p in problems if p], _PASS_MESSAGES[step_id], notes)


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
