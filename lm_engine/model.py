"""``LanguageModel``: a tokenizer, a causal LM and a device, with the exercise's operations.

Every method tokenizes exactly as the notebook does (``tokenizer(phrase, return_tensors="pt")``,
special tokens as the tokenizer adds them) and returns CPU float32 tensors or pandas tables, so
results compare directly with what a student computes in their own kernel.

The object holds no per-request state: one instance is shared by every Streamlit session and
thread. Forward passes run under ``torch.inference_mode``; the only lock guards the Rust
tokenizer, which is not safe to call from several threads at once.

Phrases longer than the model's context (``max_context`` tokens) are truncated from the left.
Tables say so in ``df.attrs["truncated_tokens"]`` (0 when nothing was dropped); for tensors,
``encoding(phrase).truncated_tokens`` gives the same number and a ``ContextTruncatedWarning``
is issued.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from lm_engine.errors import InvalidInput

__all__ = ["COLUMNS", "ContextTruncatedWarning", "Encoding", "LanguageModel"]

COLUMNS = ("tokens", "token_ids", "probabilities", "logits")
# Tokenizers report "no limit" as a huge sentinel (int(1e30)); ignore anything above this.
_NO_LIMIT = 1_000_000


class ContextTruncatedWarning(UserWarning):
    """A phrase was longer than the model's context; its first tokens were dropped."""


@dataclass(frozen=True)
class Encoding:
    """A tokenized phrase as the model sees it.

    Attributes:
        input_ids: (1, n) long tensor on CPU, after truncation.
        truncated_tokens: how many tokens were dropped from the left (0 if none).
    """

    input_ids: torch.Tensor
    truncated_tokens: int


def _check_phrase(phrase: object) -> str:
    if not isinstance(phrase, str):
        raise InvalidInput(f"the phrase must be a string, got {type(phrase).__name__}")
    if not phrase.strip():
        raise InvalidInput("the phrase is empty; type at least one word")
    return phrase


def _check_int(value: object, what: str) -> int:
    # bool is an int subclass, but k=True is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number, got {value!r}")
    return value


class LanguageModel:
    """A causal language model ready to score next tokens.

    Args:
        name: the name it was loaded under (e.g. ``"smollm2-135m"``).
        model: any transformers causal LM; it is put in eval mode.
        tokenizer: its tokenizer; a missing pad token is set to the end-of-sequence token.
        source: the ``ModelSource`` it came from, if any.

    Attributes:
        name, tokenizer, model, source: as given.
        device: the device the weights live on.
        vocab_size: V, the last dimension of the logits.
        num_parameters: number of distinct parameters (tied weights counted once).
        max_context: the longest input, in tokens; longer phrases are truncated from the left.
        tokenizer_lock: held while calling the tokenizer (it is not thread-safe).
    """

    def __init__(self, name: str, model, tokenizer, *, source=None) -> None:
        self.name = name
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.source = source
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        first = next(model.parameters())
        self.device: torch.device = first.device
        output = model.get_output_embeddings()
        self.vocab_size: int = (
            int(output.weight.shape[0]) if output is not None else int(model.config.vocab_size)
        )
        # parameters() yields shared (tied) tensors once.
        self.num_parameters: int = sum(p.numel() for p in model.parameters())
        limits = [getattr(model.config, "max_position_embeddings", None)]
        limits.append(getattr(tokenizer, "model_max_length", None))
        self.max_context: int = min(
            (int(x) for x in limits if isinstance(x, int) and 0 < x < _NO_LIMIT), default=_NO_LIMIT
        )
        params = inspect.signature(model.forward).parameters
        self._accepts_logits_to_keep = "logits_to_keep" in params
        self._accepts_position_ids = "position_ids" in params
        # Rust tokenizers must not be called from several threads at once; everything that
        # tokenizes with this model (decoding helpers included) holds this lock.
        self.tokenizer_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LanguageModel(name={self.name!r}, device={str(self.device)!r}, "
            f"vocab_size={self.vocab_size}, num_parameters={self.num_parameters:,})"
        )

    # -- tokens ---------------------------------------------------------------------------

    def encoding(self, phrase: str) -> Encoding:
        """Tokenize ``phrase`` as the notebook does, truncating from the left if too long.

        Raises:
            InvalidInput: ``phrase`` is not a string, is blank, or yields no tokens.
        """
        phrase = _check_phrase(phrase)
        with self.tokenizer_lock:
            ids = self.tokenizer(phrase, return_tensors="pt")["input_ids"]  # (1, n)
        ids = ids.to(torch.long)
        if ids.shape[-1] == 0:
            raise InvalidInput(f"the phrase {phrase!r} produced no tokens")
        dropped = max(0, ids.shape[-1] - self.max_context)
        if dropped:
            ids = ids[:, dropped:]  # (1, max_context): keep the end, it predicts the next token
        return Encoding(input_ids=ids, truncated_tokens=dropped)

    def _encode_warn(self, phrase: str) -> Encoding:
        enc = self.encoding(phrase)
        if enc.truncated_tokens:
            warnings.warn(
                f"the phrase is longer than the model's context of {self.max_context} tokens; "
                f"its first {enc.truncated_tokens} tokens were dropped",
                ContextTruncatedWarning,
                stacklevel=3,
            )
        return enc

    def encode(self, phrase: str) -> torch.Tensor:
        """The phrase's token ids.

        Returns:
            (1, n) long tensor on CPU, n = number of tokens (at most ``max_context``).
        """
        return self._encode_warn(phrase).input_ids

    # -- forward passes -------------------------------------------------------------------

    def _forward(self, input_ids, attention_mask=None, position_ids=None, keep: int = 0):
        """Logits of the last ``keep`` positions (all when 0) as float32: (batch, keep|n, V)."""
        kwargs = {"input_ids": input_ids.to(self.device), "use_cache": False}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(self.device)
        if position_ids is not None and self._accepts_position_ids:
            kwargs["position_ids"] = position_ids.to(self.device)
        # logits_to_keep skips the (V x hidden) projection for positions we do not read.
        if keep and self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = keep
        with torch.inference_mode():
            logits = self.model(**kwargs).logits
            if keep and not self._accepts_logits_to_keep:
                logits = logits[:, -keep:]
            return logits.float()

    def logits(self, phrase: str) -> torch.Tensor:
        """The model's scores for every position of the phrase.

        Returns:
            (1, n, V) float32 tensor on CPU: ``[0, i]`` scores the token after token ``i``.
        """
        ids = self._encode_warn(phrase).input_ids
        return self._forward(ids).cpu()

    def _position_logits(self, ids: torch.Tensor, position: object) -> torch.Tensor:
        """(V,) logits at ``position`` of ``ids`` (1, n), computing only what is needed."""
        position = _check_int(position, "position")
        n = ids.shape[-1]
        if not -n <= position < n:
            raise InvalidInput(
                f"position {position} is outside the phrase, which has {n} tokens "
                f"(use 0..{n - 1} or -{n}..-1)"
            )
        index = position % n
        # Keep positions index..n-1 only; the first kept row is the one asked for.
        return self._forward(ids, keep=n - index)[0, 0].cpu()  # (V,)

    def next_token_probabilities(self, phrase: str, position: int = -1) -> torch.Tensor:
        """Softmax of the logits at ``position``: the distribution of the token after it.

        Returns:
            (V,) float32 tensor on CPU that sums to 1.

        Raises:
            InvalidInput: bad phrase, or ``position`` outside the phrase's tokens.
        """
        ids = self._encode_warn(phrase).input_ids
        return torch.softmax(self._position_logits(ids, position), dim=-1)

    def _check_k(self, k: object) -> int:
        k = _check_int(k, "k")
        if not 1 <= k <= self.vocab_size:
            raise InvalidInput(
                f"k must be between 1 and the vocabulary size {self.vocab_size}, got {k}"
            )
        return k

    def _table(self, logits: torch.Tensor, k: int, truncated: int) -> pd.DataFrame:
        """Top-k table from (V,) logits, ordered like the notebook: topk of the softmax."""
        probabilities = torch.softmax(logits, dim=-1)  # (V,)
        top = torch.topk(probabilities, k)  # values, indices: (k,)
        ids = top.indices.tolist()
        with self.tokenizer_lock:
            tokens = [self.tokenizer.decode([i]) for i in ids]
        table = pd.DataFrame(
            {
                "tokens": tokens,
                "token_ids": pd.Series(ids, dtype="int64"),
                "probabilities": pd.Series(top.values.tolist(), dtype="float64"),
                "logits": pd.Series(logits[top.indices].tolist(), dtype="float64"),
            }
        )
        table.attrs["truncated_tokens"] = truncated
        return table

    def top_k(self, phrase: str, k: int = 10, position: int = -1) -> pd.DataFrame:
        """The ``k`` most likely next tokens after ``position``.

        Returns:
            DataFrame with ``k`` rows in descending probability and columns ``tokens`` (each
            id decoded on its own), ``token_ids``, ``probabilities``, ``logits``;
            ``attrs["truncated_tokens"]`` says how many leading tokens were dropped.

        Raises:
            InvalidInput: bad phrase, ``k`` outside 1..V, or ``position`` outside the phrase.
        """
        k = self._check_k(k)
        enc = self.encoding(phrase)
        return self._table(self._position_logits(enc.input_ids, position), k, enc.truncated_tokens)

    def top_k_from_logits(self, logits: torch.Tensor, k: int = 10) -> pd.DataFrame:
        """The ``top_k`` table for one position's logits already computed (no forward pass).

        Args:
            logits: (V,) logits, e.g. ``self.logits(phrase)[0, -1]``.
            k: how many tokens.

        Returns:
            The table ``top_k`` returns; ``attrs["truncated_tokens"]`` is 0 (the logits do
            not say whether their phrase was truncated).

        Raises:
            InvalidInput: ``logits`` is not a (V,) tensor, or ``k`` is outside 1..V.
        """
        k = self._check_k(k)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (self.vocab_size,):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise InvalidInput(f"logits must be a ({self.vocab_size},) tensor, got {shape}")
        return self._table(logits.detach().float().cpu(), k, 0)

    def predict_next_tokens(self, phrase: str, k: int = 10) -> pd.DataFrame:
        """The function students write in step 6: ``top_k`` at the last position."""
        return self.top_k(phrase, k)

    def top_k_batch(self, phrases: Sequence[str], k: int = 10) -> list[pd.DataFrame]:
        """``top_k`` for several phrases in one padded forward pass.

        Phrases are tokenized one by one exactly as ``top_k`` does, left-padded with the pad
        token and masked, and given explicit position ids, so each table equals the
        one-by-one result (up to float rounding).

        Returns:
            One table per phrase, in order (see ``top_k``).

        Raises:
            InvalidInput: ``phrases`` is not a list of strings, or any phrase or ``k`` is bad.
        """
        if isinstance(phrases, str) or not isinstance(phrases, Sequence):
            raise InvalidInput("phrases must be a list of strings")
        k = self._check_k(k)
        encodings = []
        for i, phrase in enumerate(phrases):
            try:
                encodings.append(self.encoding(phrase))
            except InvalidInput as exc:
                raise InvalidInput(f"phrase {i + 1}: {exc}") from None
        if not encodings:
            return []
        lengths = [e.input_ids.shape[-1] for e in encodings]
        width = max(lengths)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(encodings), width), pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(encodings), width), dtype=torch.long)  # (B, T)
        for row, (enc, n) in enumerate(zip(encodings, lengths, strict=True)):
            input_ids[row, width - n :] = enc.input_ids[0]
            mask[row, width - n :] = 1
        # Real tokens get positions 0..n-1 as in a single pass; pads get 0 (masked anyway).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        last = self._forward(input_ids, mask, positions, keep=1)[:, -1].cpu()  # (B, V)
        return [
            self._table(last[row], k, enc.truncated_tokens) for row, enc in enumerate(encodings)
        ]
