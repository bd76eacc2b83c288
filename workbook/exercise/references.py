"""The engine's reference: what the ``LanguageModel`` answers for the student's own phrase.

A step's reference holds the engine's tensors and tables for the same phrase, and, as
zero-argument functions, costly alternatives the comparison calls only when it needs them.
The engine's answers are cached, so checking steps 2-5 one after the other on one phrase
costs a single forward pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from workbook.exercise import content
from workbook.exercise.digest import scalar_id, student_phrase, tensor_values
from workbook.exercise.inspection import UNSEEN_CALLS, checked_step_id
from workbook.exercise.tensors import Rows

if TYPE_CHECKING:
    from lm_engine import LanguageModel


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


def _logits_rows(lm: LanguageModel, phrase: str) -> Rows:
    """The summary of the phrase's logits: one row per position."""
    return _CACHE.get(lm, ("rows", phrase), lambda: Rows.of(_logits(lm, phrase)))


def _top_k(lm: LanguageModel, phrase: str, k: int) -> Any:
    return _CACHE.get(lm, ("top_k", phrase, k), lambda: lm.top_k(phrase, k=k))


def _last_top_k(lm: LanguageModel, phrase: str, k: int) -> Any:
    """The top-k table of the phrase's last position, from its cached logits (no new pass)."""

    def compute() -> Any:
        return lm.top_k_from_logits(_logits(lm, phrase)[0, -1], k=k)  # from (V,)

    return _CACHE.get(lm, ("last_top_k", phrase, k), compute)


def _raw_tokens(lm: LanguageModel, ids: Sequence[int]) -> list[str]:
    """The vocabulary's own spelling of each id (e.g. 'Ġgo'): what decoding turns into text."""
    with lm.tokenizer_lock:  # the Rust tokenizer is not thread-safe (Explore runs alongside)
        tokens = lm.tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    return [str(t) for t in tokens]


def _decode(lm: LanguageModel, ids: Sequence[int]) -> str:
    """The text of ``ids``, decoded under the model's tokenizer lock."""
    with lm.tokenizer_lock:
        return lm.tokenizer.decode(ids)


def _table_reference(lm: LanguageModel, table: Any) -> dict:
    """The engine's top-k table and what a wrong table is often made of instead."""
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
    ref["phrase_text"] = _decode(lm, ref["input_ids"].reshape(-1).tolist())
    ids = tensor_values(digest["values"].get("input_ids"))
    if ids is not None and not ids.is_floating_point() and ids.dim() in (1, 2) and ids.numel():
        flat = ids.reshape(-1)
        if bool(((flat >= 0) & (flat < lm.vocab_size)).all()):
            ref["ids_text"] = _decode(lm, flat.tolist())
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
    table = _table_reference(lm, _last_top_k(lm, phrase, 10))  # the table step 5 uses too
    ref.update(
        probabilities=torch.softmax(last, dim=-1),  # (V,)
        argmax=table["ids"][0],
        argmin=int(last.argmin()),
        token=table["tokens"][0],
        raw_token=table["raw_tokens"][0],
        probability=table["probabilities"][0],
        logit=table["logits"][0],
    )
    got_id, _ = scalar_id(digest["values"].get("most_likely_token_id"))
    if got_id is not None and 0 <= got_id < lm.vocab_size:
        ref["id_token"] = _decode(lm, [got_id])
    return ref


def _ref_step5(lm: LanguageModel, phrase: str, digest: Mapping) -> dict:
    ref = _ref_logits(lm, phrase, digest)
    table = _table_reference(lm, _last_top_k(lm, phrase, 10))
    ref.update(
        probabilities=torch.softmax(ref["logits"][0, -1], dim=-1),  # (V,)
        table=table,
        indices=torch.tensor(table["ids"], dtype=torch.int64),  # (10,)
        values=torch.tensor(table["probabilities"], dtype=torch.float32),  # (10,)
    )
    return ref


def _ref_step6(lm: LanguageModel) -> dict:
    return {"tables": [_table_reference(lm, _top_k(lm, p, k)) for p, k in UNSEEN_CALLS]}


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
    step_id = checked_step_id(step)
    if step_id == "step6":
        return {"step": step_id, **_ref_step6(lm)}
    phrase = student_phrase(digest)
    if phrase is None:
        return {"step": step_id}
    return {"step": step_id, "phrase": phrase, **_REFERENCES[step_id](lm, phrase, digest)}
