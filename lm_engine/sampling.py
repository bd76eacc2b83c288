"""Decoding: from one next-token distribution to a whole continuation.

Every function here is pure: it reads the model, never changes it, and keeps no state
between calls, because one model object is shared by every Streamlit session and thread.
Randomness comes only from a ``torch.Generator`` seeded per call, so the same ``seed`` gives
the same output.

Shapes: ``V`` is the vocabulary size (last dimension of the logits), ``n`` the number of
tokens in the prompt, ``b`` the number of live beams.

The logit processors (:func:`apply_temperature`, :func:`top_k_filter`, :func:`top_p_filter`)
take logits of shape ``(..., V)`` and return a tensor of the same shape; a removed token gets
``-inf`` so that softmax gives it probability 0.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from lm_engine.errors import InvalidInput

__all__ = [
    "STRATEGIES",
    "BeamCandidate",
    "BeamStep",
    "GeneratedToken",
    "Generation",
    "apply_temperature",
    "generate",
    "next_token_logits",
    "sample_next",
    "token_text",
    "top_k_filter",
    "top_p_filter",
]

Strategy = Literal["greedy", "sample", "top-k", "top-p", "beam"]
STRATEGIES: tuple[str, ...] = ("greedy", "sample", "top-k", "top-p", "beam")

# A longer generation is no lesson for a student and would hold a shared CPU for long.
MAX_NEW_TOKENS = 256
MAX_BEAMS = 16


# --- logit processors ---------------------------------------------------------------------


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature``: below 1 sharpens, above 1 flattens.

    Args:
        logits: scores of shape ``(..., V)``.
        temperature: a positive number. (Temperature 0 means "always the argmax"; the
            decoders handle it as greedy, because dividing by 0 is undefined.)

    Returns:
        Logits of shape ``(..., V)``.

    Raises:
        InvalidInput: ``temperature`` is not positive.
    """
    if not temperature > 0:
        raise InvalidInput(f"temperature must be greater than 0, got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the ``k`` highest-scoring tokens; the rest get ``-inf``.

    Exactly ``k`` are kept even when scores tie at the cut-off (ties go to the lower id,
    as ``torch.topk`` orders them), so the student sees precisely the ``k`` they chose.

    Args:
        logits: scores of shape ``(..., V)``.
        k: how many tokens to keep, ``1 <= k``; a ``k`` above ``V`` keeps everything.

    Returns:
        Logits of shape ``(..., V)``.
    """
    if k < 1:
        raise InvalidInput(f"top-k must keep at least 1 token, got k={k}")
    k = min(k, logits.shape[-1])
    kept = torch.topk(logits, k, dim=-1).indices  # (..., k)
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, kept, True)  # (..., V)
    return logits.masked_fill(~mask, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose mass reaches ``p``.

    Args:
        logits: scores of shape ``(..., V)``.
        p: the probability mass to reach, ``0 < p <= 1``. The most likely token is always kept.

    Returns:
        Logits of shape ``(..., V)``.
    """
    if not 0 < p <= 1:
        raise InvalidInput(f"top-p must be in (0, 1], got p={p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    sorted_probs = sorted_logits.softmax(dim=-1)  # (..., V)
    # Mass of the tokens strictly before each one: a token is needed while that is below p.
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (..., V)
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True
    mask = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # (..., V)
    return logits.masked_fill(~mask, float("-inf"))


def _process(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the order transformers uses): ``(..., V)``."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Choose one next token from a distribution.

    Args:
        logits: the next-token scores, shape ``(V,)``.
        temperature: 0 takes the argmax (greedy); otherwise the logits are divided by it.
        top_k: keep only the ``top_k`` most likely tokens before sampling.
        top_p: keep only the nucleus of mass ``top_p`` before sampling.
        generator: the source of randomness (seed it for a reproducible choice).

    Returns:
        The chosen token id.
    """
    if logits.dim() != 1:
        raise InvalidInput(f"sample_next takes logits of shape (V,), got {list(logits.shape)}")
    if temperature < 0:
        raise InvalidInput(f"temperature must be 0 or more, got {temperature}")
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = _process(logits.float(), temperature, top_k, top_p).softmax(dim=-1)  # (V,)
    return int(torch.multinomial(probs, 1, generator=generator))


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedToken:
    """One token a decoder chose.

    Attributes:
        token_id: the token's id.
        token: the token decoded to text (as it reads inside the sentence).
        probability: its probability under the model's own softmax (temperature 1, nothing
            cut off), given everything before it.
        rank: its rank in that distribution, 1 = the most likely token.
        chosen_probability: its probability in the distribution the strategy actually
            drew from (after temperature and top-k/top-p); 1.0 for greedy and beam search.
        is_eos: the end-of-sequence token, which ends the generation.
    """

    token_id: int
    token: str
    probability: float
    rank: int
    chosen_probability: float
    is_eos: bool = False


@dataclass(frozen=True)
class BeamCandidate:
    """A continuation considered at one beam-search step.

    Attributes:
        parent: index of the beam it extends, in the previous step's ``beams``.
        token_id: the token appended.
        token: that token as text.
        log_probability: the token's log-probability given its beam.
        rank: the token's rank in its beam's distribution (1 = most likely).
        score: the beam's summed log-probability after appending the token.
        kept: it continues as one of the next step's beams.
        finished: it ended (end-of-sequence or length limit) and entered the list of
            finished hypotheses.
        text: the whole continuation so far (without the prompt).
    """

    parent: int
    token_id: int
    token: str
    log_probability: float
    rank: int
    score: float
    kept: bool
    finished: bool
    text: str


@dataclass(frozen=True)
class BeamStep:
    """One step of beam search: the beams it started from and the candidates it ranked.

    Attributes:
        step: 1 for the first generated token.
        beams: the continuations (text without the prompt) extended at this step.
        candidates: the best ``2 * num_beams`` (or more with several end tokens)
            continuations over all beams, best first.
    """

    step: int
    beams: list[str]
    candidates: list[BeamCandidate]


@dataclass(frozen=True)
class Generation:
    """What :func:`generate` returns.

    Attributes:
        phrase: the prompt.
        strategy: the strategy used.
        prompt_ids: the prompt's token ids.
        tokens: the generated tokens in order (including a final end-of-sequence token).
        stop_reason: ``"eos"`` (the model ended the sentence) or ``"length"`` (the limit).
        score: beam search only: the winning hypothesis' length-normalised score.
        beam_steps: beam search only: the tree, one entry per step.
    """

    phrase: str
    strategy: str
    prompt_ids: list[int]
    tokens: list[GeneratedToken]
    stop_reason: str
    score: float | None = None
    beam_steps: list[BeamStep] = field(default_factory=list)

    @property
    def token_ids(self) -> list[int]:
        """Prompt and generated ids, as ``transformers``' ``generate`` returns them."""
        return self.prompt_ids + [t.token_id for t in self.tokens]

    @property
    def text(self) -> str:
        """The generated continuation, without the end-of-sequence token."""
        return "".join(t.token for t in self.tokens if not t.is_eos)


# --- helpers ------------------------------------------------------------------------------


class _Text:
    """The tokenizer side of a model: encode a phrase, decode a token in context.

    A ``LanguageModel`` guards its Rust tokenizer with a lock (it is not safe to call from
    several threads at once); every call here takes that lock too.
    """

    def __init__(self, lm: Any) -> None:
        self.lm = lm
        self.tokenizer = lm.tokenizer
        self.lock = getattr(lm, "tokenizer_lock", None) or contextlib.nullcontext()

    def encode(self, phrase: str, device: torch.device) -> torch.Tensor:
        """The prompt's ids, shape ``(1, n)``, on ``device``."""
        if not isinstance(phrase, str) or not phrase.strip():
            raise InvalidInput("Type a phrase first: it is empty.")
        with self.lock:
            ids = self.tokenizer(phrase, return_tensors="pt")["input_ids"]  # (1, n)
        if ids.shape[-1] == 0:
            raise InvalidInput("The phrase gives no tokens; type some words.")
        return ids.to(device=device, dtype=torch.long)

    def piece(self, before: list[int], token_id: int) -> str:
        """The text ``token_id`` adds after ``before``: decode both, drop the prefix.

        Decoding one id alone loses the leading space that some tokenizers (SentencePiece,
        word-level) only add between tokens, and "to" and " to" are different tokens.
        """
        context = before[-4:]
        with self.lock:
            prefix = self.tokenizer.decode(context)
            full = self.tokenizer.decode([*context, token_id])
            if full.startswith(prefix):
                return full[len(prefix) :]
            return self.tokenizer.decode([token_id])


class _Pair:
    """A ``(model, tokenizer)`` pair dressed like a ``LanguageModel``."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer


def _parts(lm: Any) -> tuple[Any, _Text]:
    """The model and its :class:`_Text`, from a ``LanguageModel`` or a pair."""
    if isinstance(lm, tuple) and len(lm) == 2:
        lm = _Pair(*lm)
    if getattr(lm, "model", None) is None or getattr(lm, "tokenizer", None) is None:
        raise InvalidInput("pass a LanguageModel or a (model, tokenizer) pair")
    return lm.model, _Text(lm)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: the model's generation config and the tokenizer's."""
    ids: list[int] = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.append(config_eos)
    elif isinstance(config_eos, Sequence):
        ids.extend(int(i) for i in config_eos)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return list(dict.fromkeys(ids))


def _context_room(model: Any, prompt_len: int, max_new_tokens: int) -> int:
    """How many tokens may be generated before the model's context is full."""
    max_context = getattr(model.config, "max_position_embeddings", None)
    if max_context is None:
        return max_new_tokens
    if prompt_len >= max_context:
        raise InvalidInput(
            f"The phrase has {prompt_len} tokens; the model reads at most {max_context}. "
            "Shorten it."
        )
    return min(max_new_tokens, max_context - prompt_len)


class _Decoder:
    """Runs the model one step at a time, with or without the KV cache.

    With the cache, the prompt is read once and each later call feeds only the new token(s)
    and the cached keys/values; without it, every call recomputes the whole sequence (slow,
    kept as the reference the benchmark and tests compare against).
    """

    def __init__(self, model: Any, use_cache: bool) -> None:
        self.model = model
        self.use_cache = use_cache
        self.past: Any = None

    def first(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits after the prompt ``ids`` ``(1, n)``: shape ``(1, V)``, float32."""
        out = self.model(input_ids=ids, use_cache=self.use_cache)
        self.past = out.cache if self.use_cache else None
        return out.logits[:, -1, :].float()

    def next(self, sequences: torch.Tensor, parents: torch.Tensor | None = None) -> torch.Tensor:
        """Logits after appending the last column of ``sequences`` ``(b, len)``: ``(b, V)``.

        ``parents`` (shape ``(b,)``) says which row of the previous call each row extends;
        the cache is reordered to match (beam search), which also expands it from 1 row to b.
        """
        if not self.use_cache:
            out = self.model(input_ids=sequences, use_cache=False)
            return out.logits[:, -1, :].float()
        if parents is not None:
            self.past.reorder_cache(parents)
        out = self.model(input_ids=sequences[:, -1:], cache=self.past, use_cache=True)
        self.past = out.cache
        return out.logits[:, -1, :].float()


def _validate(
    strategy: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    num_beams: int,
) -> None:
    if strategy not in STRATEGIES:
        raise InvalidInput(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInput(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise InvalidInput(f"temperature must be 0 or more, got {temperature}")
    if top_k < 1:
        raise InvalidInput(f"top-k must keep at least 1 token, got {top_k}")
    if not 0 < top_p <= 1:
        raise InvalidInput(f"top-p must be in (0, 1], got {top_p}")
    if not 1 <= num_beams <= MAX_BEAMS:
        raise InvalidInput(f"num_beams must be between 1 and {MAX_BEAMS}")


# --- generation ---------------------------------------------------------------------------


def strategy_settings(
    strategy: str, temperature: float, top_k: int | None, top_p: float | None
) -> tuple[float, int | None, float | None]:
    """The ``(temperature, top_k, top_p)`` a one-token-at-a-time strategy samples with.

    Greedy is temperature 0 (argmax); plain sampling uses neither cut-off; top-k and top-p
    use only their own. Beam search is not a per-token sampling strategy.
    """
    table = {
        "greedy": (0.0, None, None),
        "sample": (temperature, None, None),
        "top-k": (temperature, top_k, None),
        "top-p": (temperature, None, top_p),
    }
    if strategy not in table:
        raise InvalidInput(
            f"{strategy!r} does not pick one token at a time; use one of {list(table)}"
        )
    return table[strategy]


@torch.no_grad()
def generate(
    lm: Any,
    phrase: str,
    strategy: str = "greedy",
    max_new_tokens: int = 20,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 0.9,
    num_beams: int = 3,
    seed: int = 0,
    *,
    length_penalty: float = 1.0,
    early_stopping: bool = False,
    use_cache: bool = True,
) -> Generation:
    """Continue ``phrase`` token by token with one decoding strategy.

    Each step scores the next token given everything so far, picks one (the strategy's
    decision), appends it and repeats, until an end-of-sequence token or the length limit.

    Args:
        lm: a ``LanguageModel`` or a ``(model, tokenizer)`` pair (Hugging Face objects).
        phrase: the prompt.
        strategy: ``"greedy"`` (argmax), ``"sample"`` (softmax at ``temperature``),
            ``"top-k"`` (sample among the ``top_k`` most likely), ``"top-p"`` (sample from
            the nucleus of mass ``top_p``) or ``"beam"`` (beam search with ``num_beams``).
        max_new_tokens: the length limit, 1 to 256 (less if the model's context is full).
        temperature: for the sampling strategies; 0 makes them greedy.
        top_k: for ``"top-k"``.
        top_p: for ``"top-p"``.
        num_beams: for ``"beam"``; one beam is greedy search.
        seed: seeds this call's own random generator (the sampling strategies).
        length_penalty: beam search: a finished hypothesis scores its summed log-probability
            divided by (generated length ** length_penalty), as in ``transformers``.
        early_stopping: beam search: stop as soon as ``num_beams`` hypotheses are finished
            (``True``), or when no running beam can beat them any more (``False``), as in
            ``transformers``.
        use_cache: reuse the attention keys/values of earlier tokens (fast); ``False``
            recomputes the whole sequence at every step (same result, for comparison).

    Returns:
        A :class:`Generation`.

    Raises:
        InvalidInput: empty phrase, unknown strategy or an out-of-range setting.
    """
    _validate(strategy, max_new_tokens, temperature, top_k, top_p, num_beams)
    model, text = _parts(lm)
    ids = text.encode(phrase, _device(model))  # (1, n)
    limit = _context_room(model, ids.shape[-1], max_new_tokens)
    eos = _eos_ids(model, text.tokenizer)
    decoder = _Decoder(model, use_cache)
    if strategy == "beam":
        return _beam_search(
            decoder, text, phrase, ids, limit, eos, num_beams, length_penalty, early_stopping
        )

    generator = torch.Generator(device=ids.device).manual_seed(seed)
    temp, k, p = strategy_settings(strategy, temperature, top_k, top_p)
    prompt_ids = ids[0].tolist()
    tokens: list[GeneratedToken] = []
    stop_reason = "length"
    logits = decoder.first(ids)[0]  # (V,)
    for step in range(limit):
        token_id = sample_next(logits, temperature=temp, top_k=k, top_p=p, generator=generator)
        if temp == 0:
            chosen_probability = 1.0
        else:
            chosen = _process(logits, temp, k, p).softmax(dim=-1)  # (V,)
            chosen_probability = float(chosen[token_id])
        tokens.append(_token(text, ids[0].tolist(), logits, token_id, chosen_probability, eos))
        ids = torch.cat([ids, ids.new_tensor([[token_id]])], dim=-1)  # (1, n + step + 1)
        if token_id in eos:
            stop_reason = "eos"
            break
        if step + 1 < limit:
            logits = decoder.next(ids)[0]  # (V,)
    return Generation(
        phrase=phrase,
        strategy=strategy,
        prompt_ids=prompt_ids,
        tokens=tokens,
        stop_reason=stop_reason,
    )


def _token(
    text: _Text,
    before: list[int],
    logits: torch.Tensor,
    token_id: int,
    chosen_probability: float,
    eos: list[int],
) -> GeneratedToken:
    """Describe ``token_id`` against the model's own distribution ``logits`` ``(V,)``."""
    probs = logits.softmax(dim=-1)  # (V,)
    rank = int((logits > logits[token_id]).sum()) + 1
    return GeneratedToken(
        token_id=token_id,
        token=text.piece(before, token_id),
        probability=float(probs[token_id]),
        rank=rank,
        chosen_probability=chosen_probability,
        is_eos=token_id in eos,
    )


@torch.no_grad()
def next_token_logits(lm: Any, phrase: str, appended: Sequence[int] = ()) -> torch.Tensor:
    """The model's scores for the token after ``phrase`` plus already chosen tokens.

    Building a sentence token by token keeps the chosen ids rather than re-tokenizing the
    growing text, because tokenizing "plan" + " to" need not give the same ids as the
    choices that were made.

    Args:
        lm: a ``LanguageModel`` or a ``(model, tokenizer)`` pair.
        phrase: the prompt.
        appended: token ids chosen after the prompt, in order.

    Returns:
        Logits of shape ``(V,)``, float32, on CPU.

    Raises:
        InvalidInput: empty phrase, or the text no longer fits the model's context.
    """
    model, text = _parts(lm)
    ids = text.encode(phrase, _device(model))  # (1, n)
    if appended:
        extra = torch.tensor([list(appended)], dtype=torch.long, device=ids.device)  # (1, m)
        ids = torch.cat([ids, extra], dim=-1)  # (1, n + m)
    _context_room(model, ids.shape[-1], 1)
    return model(input_ids=ids, use_cache=False).logits[0, -1].float().cpu()  # (V,)


def token_text(lm: Any, before: Sequence[int], token_id: int) -> str:
    """How ``token_id`` reads when it follows the ids ``before`` (keeps its leading space)."""
    _, text = _parts(lm)
    return text.piece(list(before), token_id)


def _beam_search(
    decoder: _Decoder,
    text: _Text,
    phrase: str,
    prompt: torch.Tensor,
    limit: int,
    eos: list[int],
    num_beams: int,
    length_penalty: float,
    early_stopping: bool,
) -> Generation:
    """Beam search with the same rules as ``transformers`` (``do_sample=False``).

    At each step every live beam is extended by every token; the best ``2 * num_beams``
    continuations (more with several end tokens) are ranked by summed log-probability. Among
    the first ``num_beams`` of them, those that end (end token or length limit) become
    finished hypotheses, scored ``sum_logprob / generated_len ** length_penalty``; the best
    ``num_beams`` that do not end carry on. The search stops at the length limit, when
    ``early_stopping`` and ``num_beams`` hypotheses are finished, or when the best running
    beam can no longer beat the worst finished one.
    """
    to_rank = max(2, 1 + len(eos)) * num_beams
    # Live beams: the sequences (b, prompt_len + step), their summed log-probs (b,), and for
    # each the tokens generated so far (kept to report probability and rank per token).
    sequences = prompt  # (1, n): the first step has a single beam, the prompt
    scores = torch.zeros(1, device=prompt.device)  # (1,)
    histories: list[list[GeneratedToken]] = [[]]
    finished: list[tuple[float, list[GeneratedToken], bool]] = []  # (score, tokens, eos)
    steps: list[BeamStep] = []
    improvable = True
    logits = decoder.first(prompt)  # (1, V)
    for step in range(1, limit + 1):
        log_probs = logits.log_softmax(dim=-1)  # (b, V)
        vocab = log_probs.shape[-1]
        total = (log_probs + scores[:, None]).reshape(-1)  # (b * V,)
        k = min(to_rank, total.numel())
        top_scores, top_flat = torch.topk(total, k)  # (k,), (k,)
        parents = (top_flat // vocab).tolist()
        token_ids = (top_flat % vocab).tolist()
        last_step = step == limit

        candidates: list[BeamCandidate] = []
        next_rows: list[int] = []
        next_tokens: list[int] = []
        next_histories: list[list[GeneratedToken]] = []
        beams_full = early_stopping and len(finished) >= num_beams
        for i, (parent, token_id, score) in enumerate(
            zip(parents, token_ids, top_scores.tolist(), strict=True)
        ):
            row_logits = logits[parent]  # (V,)
            ends = token_id in eos or last_step
            history = histories[parent]
            token = _token(
                text,
                sequences[parent].tolist(),
                row_logits,
                token_id,
                1.0,
                eos,
            )
            entered = False
            if ends and i < num_beams and improvable and not beams_full:
                normalised = score / (step**length_penalty)
                finished.append((normalised, [*history, token], token_id in eos))
                entered = True
            keep = not ends and len(next_rows) < num_beams
            if keep:
                next_rows.append(parent)
                next_tokens.append(token_id)
                next_histories.append([*history, token])
            candidates.append(
                BeamCandidate(
                    parent=parent,
                    token_id=token_id,
                    token=token.token,
                    log_probability=float(log_probs[parent, token_id]),
                    rank=token.rank,
                    score=score,
                    kept=keep,
                    finished=entered,
                    text="".join(t.token for t in [*history, token] if not t.is_eos),
                )
            )
        # Only the best num_beams finished hypotheses matter (sorted, stable on ties).
        finished.sort(key=lambda item: item[0], reverse=True)
        del finished[num_beams:]
        steps.append(
            BeamStep(
                step=step,
                beams=["".join(t.token for t in h if not t.is_eos) for h in histories],
                candidates=candidates,
            )
        )
        if last_step or not next_rows:
            break
        parent_index = torch.tensor(next_rows, device=prompt.device)  # (b,)
        new_tokens = torch.tensor(next_tokens, device=prompt.device)[:, None]  # (b, 1)
        sequences = torch.cat([sequences[parent_index], new_tokens], dim=-1)  # (b, len + 1)
        scores = top_scores[[i for i, c in enumerate(candidates) if c.kept]]  # (b,)
        histories = next_histories
        # Can a running beam still beat the worst finished hypothesis? (transformers'
        # heuristic: the best running score at the current length.)
        if len(finished) >= num_beams:
            best_running = float(scores[0]) / (step**length_penalty)
            improvable = improvable and best_running > finished[-1][0]
        if not improvable or (early_stopping and len(finished) >= num_beams):
            break
        logits = decoder.next(sequences, parent_index)  # (b, V)

    best_score, best_tokens, ended = finished[0]
    return Generation(
        phrase=phrase,
        strategy="beam",
        prompt_ids=prompt[0].tolist(),
        tokens=best_tokens,
        stop_reason="eos" if ended else "length",
        score=best_score,
        beam_steps=steps,
    )
