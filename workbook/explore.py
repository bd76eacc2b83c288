"""The Explore page's logic: from one next-token distribution to a whole sentence.

Everything here returns plain data (pandas tables, dataclasses, lists of dicts) that the
page draws; nothing imports Streamlit. The sentence a student builds is kept as a list of
small dicts (``BuiltToken.as_dict``) so it fits in session state.

Q3 of the homework asks how to turn one next-token prediction into a whole sentence. The
page lets students make that per-step decision themselves and compare it with the usual
strategies; the texts below point at what to observe without giving the answer away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch

from lm_engine.errors import LMEngineError
from lm_engine.lens import logit_lens
from lm_engine.sampling import (
    Generation,
    apply_temperature,
    generate,
    next_token_logits,
    sample_next,
    strategy_settings,
    token_text,
    top_k_filter,
    top_p_filter,
)
from workbook.errors import WorkbookError

__all__ = [
    "BuiltToken",
    "Distribution",
    "Q3_PROMPTS",
    "STEP_STRATEGIES",
    "beam_tree",
    "candidates",
    "choose",
    "choose_by_strategy",
    "compare_strategies",
    "generation_table",
    "lens_grid",
    "next_token_distribution",
    "sentence_table",
    "visible",
]

# Strategies that can pick a single next token (beam search needs the whole sentence).
STEP_STRATEGIES = ("greedy", "sample", "top-k", "top-p")

# Questions that tie what students see here back to Q3, without answering it.
Q3_PROMPTS = (
    "At each step, what did you (or the strategy) decide, and from what information?",
    "Did always taking the most likely token give the sentence you would have written?",
    "What changes when the same phrase is continued twice with the same seed? With another seed?",
    "How did the sentence end: did the model choose to stop, or did a limit stop it?",
)


def visible(token: str) -> str:
    """A token as a label: spaces shown as ``␣`` and line breaks as ``⏎``, so they are seen."""
    return token.replace(" ", "␣").replace("\n", "⏎") or "∅"


def _engine_error(exc: LMEngineError) -> WorkbookError:
    return WorkbookError(str(exc))


# --- one distribution --------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """The next-token distribution, reshaped by temperature, with the two cut-offs.

    Attributes:
        table: the ``top`` most likely tokens with columns ``rank``, ``token``, ``label``,
            ``token_id``, ``probability`` (the model's own softmax, temperature 1),
            ``reshaped`` (softmax at the chosen temperature), ``in_top_k``, ``in_top_p``.
        temperature, top_k, top_p: the settings it was computed with.
        top_k_mass: probability mass (at the temperature) of the ``top_k`` kept tokens.
        top_p_size: how many tokens the top-p nucleus keeps (over the whole vocabulary).
        top_p_mass: the mass those tokens hold (at least ``top_p``).
        vocab_size: V, the number of tokens the softmax ran over.
        entropy_bits: entropy of the reshaped distribution, in bits (how spread out it is).
    """

    table: pd.DataFrame
    temperature: float
    top_k: int
    top_p: float
    top_k_mass: float
    top_p_size: int
    top_p_mass: float
    vocab_size: int
    entropy_bits: float


def next_token_distribution(
    lm: Any,
    phrase: str,
    *,
    appended: Sequence[int] = (),
    temperature: float = 1.0,
    top_k: int = 10,
    top_p: float = 0.9,
    top: int = 20,
) -> Distribution:
    """The full-vocabulary softmax after ``phrase`` and what temperature/top-k/top-p do to it.

    Args:
        lm: the ``LanguageModel`` (or a ``(model, tokenizer)`` pair).
        phrase: the prompt.
        appended: token ids already chosen after the prompt.
        temperature: must be positive here (a chart of temperature 0 is one bar).
        top_k: tokens kept by the top-k cut-off.
        top_p: mass the top-p nucleus must reach.
        top: how many tokens the table lists.

    Raises:
        WorkbookError: a bad phrase or setting; the message says what to change.
    """
    try:
        logits = next_token_logits(lm, phrase, appended)  # (V,)
        reshaped_logits = apply_temperature(logits, temperature)  # (V,)
        k_mask = torch.isfinite(top_k_filter(reshaped_logits, top_k))  # (V,)
        p_mask = torch.isfinite(top_p_filter(reshaped_logits, top_p))  # (V,)
    except LMEngineError as exc:
        raise _engine_error(exc) from exc
    probs = logits.softmax(-1)  # (V,)
    reshaped = reshaped_logits.softmax(-1)  # (V,)
    shown = torch.topk(reshaped, min(top, reshaped.numel()))  # values, indices: (top,)
    before = list(_prompt_ids(lm, phrase)) + list(appended)
    rows = []
    for rank, token_id in enumerate(shown.indices.tolist(), start=1):
        token = token_text(lm, before, token_id)
        rows.append(
            {
                "rank": rank,
                "token": token,
                "label": f"{rank}. {visible(token)}",
                "token_id": token_id,
                "probability": float(probs[token_id]),
                "reshaped": float(reshaped[token_id]),
                "in_top_k": bool(k_mask[token_id]),
                "in_top_p": bool(p_mask[token_id]),
            }
        )
    nonzero = reshaped[reshaped > 0]
    entropy = float(-(nonzero * nonzero.log2()).sum())
    return Distribution(
        table=pd.DataFrame(rows),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        top_k_mass=float(reshaped[k_mask].sum()),
        top_p_size=int(p_mask.sum()),
        top_p_mass=float(reshaped[p_mask].sum()),
        vocab_size=int(reshaped.numel()),
        entropy_bits=entropy,
    )


def _prompt_ids(lm: Any, phrase: str) -> list[int]:
    if isinstance(lm, tuple):  # a bare (model, tokenizer) pair, as in the tests
        return lm[1](phrase)["input_ids"]
    return lm.encode(phrase)[0].tolist()  # thread-safe, as the notebook tokenizes


# --- building a sentence step by step ----------------------------------------------------


@dataclass(frozen=True)
class BuiltToken:
    """One token appended to the student's sentence.

    Attributes:
        token_id: its id.
        token: its text in the sentence.
        probability: the model's probability for it at that step (temperature 1).
        rank: 1 = the model's top choice at that step.
        chosen_by: ``"you"`` or the strategy that picked it.
    """

    token_id: int
    token: str
    probability: float
    rank: int
    chosen_by: str

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for session state."""
        return asdict(self)


def candidates(lm: Any, phrase: str, built: Sequence[dict], k: int = 8) -> pd.DataFrame:
    """The ``k`` most likely next tokens after the phrase and the tokens built so far.

    Returns:
        Columns ``rank``, ``token``, ``label``, ``token_id``, ``probability``.

    Raises:
        WorkbookError: a bad phrase, or the sentence no longer fits the model's context.
    """
    dist = next_token_distribution(
        lm, phrase, appended=[b["token_id"] for b in built], top=k, top_k=k
    )
    return dist.table[["rank", "token", "label", "token_id", "probability"]]


def choose(
    lm: Any, phrase: str, built: Sequence[dict], token_id: int, chosen_by: str = "you"
) -> list[dict]:
    """Append ``token_id`` to the sentence, recording its probability and rank.

    Returns:
        A new list (the old one is not changed), ending with the new token's dict.
    """
    appended = [b["token_id"] for b in built]
    try:
        logits = next_token_logits(lm, phrase, appended)  # (V,)
    except LMEngineError as exc:
        raise _engine_error(exc) from exc
    return _append(lm, phrase, built, logits, token_id, chosen_by)


def _append(
    lm: Any, phrase: str, built: Sequence[dict], logits: torch.Tensor, token_id: int, by: str
) -> list[dict]:
    """``built`` plus ``token_id``, described against the step's ``logits`` ``(V,)``."""
    if not 0 <= token_id < logits.numel():
        raise WorkbookError(f"token id {token_id} is not in the vocabulary")
    appended = [b["token_id"] for b in built]
    token = BuiltToken(
        token_id=token_id,
        token=token_text(lm, _prompt_ids(lm, phrase) + appended, token_id),
        probability=float(logits.softmax(-1)[token_id]),
        rank=int((logits > logits[token_id]).sum()) + 1,
        chosen_by=by,
    )
    return [*built, token.as_dict()]


def choose_by_strategy(
    lm: Any,
    phrase: str,
    built: Sequence[dict],
    strategy: str,
    *,
    temperature: float = 1.0,
    top_k: int = 10,
    top_p: float = 0.9,
    seed: int = 0,
) -> list[dict]:
    """Let a strategy pick the next token (reproducible: the seed is mixed with the step).

    Raises:
        WorkbookError: unknown strategy or a bad setting.
    """
    if strategy not in STEP_STRATEGIES:
        raise WorkbookError(
            f"{strategy!r} cannot pick one token at a time; choose one of "
            + ", ".join(STEP_STRATEGIES)
        )
    appended = [b["token_id"] for b in built]
    generator = torch.Generator().manual_seed(seed * 100_003 + len(built))
    try:
        logits = next_token_logits(lm, phrase, appended)  # (V,)
        temp, k, p = strategy_settings(strategy, temperature, top_k, top_p)
        token_id = sample_next(logits, temperature=temp, top_k=k, top_p=p, generator=generator)
    except LMEngineError as exc:
        raise _engine_error(exc) from exc
    return _append(lm, phrase, built, logits, token_id, strategy)


def sentence_table(built: Sequence[dict]) -> pd.DataFrame:
    """The built tokens as a table: ``step``, ``token``, ``label``, ``probability``, ``rank``,
    ``chosen_by``."""
    table = pd.DataFrame(
        list(built), columns=["token_id", "token", "probability", "rank", "chosen_by"]
    )
    table.insert(0, "step", range(1, len(table) + 1))
    table["label"] = [visible(t) for t in table["token"]]
    return table


# --- comparing strategies ----------------------------------------------------------------


def compare_strategies(
    lm: Any,
    phrase: str,
    *,
    seed: int = 0,
    max_new_tokens: int = 20,
    temperatures: tuple[float, float] = (0.7, 1.5),
    top_p: float = 0.9,
    num_beams: int = 3,
) -> dict[str, Generation]:
    """The same phrase and seed continued by five strategies.

    Returns:
        Label -> :class:`Generation`, in the order greedy, sampling at the two temperatures,
        top-p, beam search.

    Raises:
        WorkbookError: a bad phrase or setting.
    """
    low, high = temperatures
    runs = {
        "greedy": {"strategy": "greedy"},
        f"sampling, T={low:g}": {"strategy": "sample", "temperature": low},
        f"sampling, T={high:g}": {"strategy": "sample", "temperature": high},
        f"top-p {top_p:g}": {"strategy": "top-p", "top_p": top_p},
        f"beam search, {num_beams} beams": {"strategy": "beam", "num_beams": num_beams},
    }
    try:
        return {
            label: generate(lm, phrase, max_new_tokens=max_new_tokens, seed=seed, **kwargs)
            for label, kwargs in runs.items()
        }
    except LMEngineError as exc:
        raise _engine_error(exc) from exc


def generation_table(generation: Generation) -> pd.DataFrame:
    """One row per generated token: ``step``, ``token``, ``label``, ``probability``,
    ``rank``, ``chosen_probability``."""
    return pd.DataFrame(
        [
            {
                "step": i,
                "token": t.token,
                "label": "⟨end⟩" if t.is_eos else visible(t.token),
                "probability": t.probability,
                "rank": t.rank,
                "chosen_probability": t.chosen_probability,
            }
            for i, t in enumerate(generation.tokens, start=1)
        ],
        columns=["step", "token", "label", "probability", "rank", "chosen_probability"],
    )


def beam_tree(generation: Generation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The beam search tree as chart data: nodes and the edges between them.

    Node ``(step, slot)`` is the ``slot``-th best candidate of that step (step 0 is the
    prompt). Each candidate extends one beam of the previous step; beams are the kept
    candidates of that step, so the edge goes back to that candidate's slot.

    Returns:
        ``nodes`` with ``step``, ``slot``, ``token``, ``label``, ``text``, ``score``,
        ``log_probability``, ``status`` ("kept", "finished", "dropped", "prompt"), and
        ``edges`` with ``step``, ``from_slot``, ``to_slot``, ``status``.
    """
    nodes = [
        {
            "step": 0,
            "slot": 0,
            "token": "",
            "label": "prompt",
            "text": "",
            "score": 0.0,
            "log_probability": 0.0,
            "status": "prompt",
        }
    ]
    edges = []
    previous_kept = [0]  # slots, at the previous step, of the beams this step extends
    for step in generation.beam_steps:
        for slot, c in enumerate(step.candidates):
            status = "finished" if c.finished else "kept" if c.kept else "dropped"
            nodes.append(
                {
                    "step": step.step,
                    "slot": slot,
                    "token": c.token,
                    "label": visible(c.token),
                    "text": c.text,
                    "score": c.score,
                    "log_probability": c.log_probability,
                    "status": status,
                }
            )
            edges.append(
                {
                    "step": step.step,
                    "from_slot": previous_kept[c.parent],
                    "to_slot": slot,
                    "status": status,
                }
            )
        previous_kept = [slot for slot, c in enumerate(step.candidates) if c.kept]
    return pd.DataFrame(nodes), pd.DataFrame(edges)


# --- logit lens -------------------------------------------------------------------------


def lens_grid(lm: Any, phrase: str, top: int = 5) -> pd.DataFrame:
    """The logit lens as a layers × positions grid of each cell's top token.

    Returns:
        One row per (layer, position) with ``layer``, ``position``, ``input_token``,
        ``column`` (a unique axis label), ``token``, ``label``, ``probability`` and
        ``alternatives`` (the next ``top - 1`` tokens with their probabilities).

    Raises:
        WorkbookError: a bad phrase.
    """
    try:
        table = logit_lens(lm, phrase, top=top)
    except LMEngineError as exc:
        raise _engine_error(exc) from exc
    rows = []
    for (layer, position), cell in table.groupby(["layer", "position"], sort=True):
        cell = cell.sort_values("rank")
        best = cell.iloc[0]
        others = ", ".join(
            f"{visible(t)} {p:.0%}"
            for t, p in zip(cell["token"].iloc[1:], cell["probability"].iloc[1:], strict=True)
        )
        rows.append(
            {
                "layer": int(layer),
                "position": int(position),
                "input_token": best["input_token"],
                "column": f"{position}: {visible(best['input_token'])}",
                "token": best["token"],
                "label": visible(best["token"]),
                "probability": float(best["probability"]),
                "alternatives": others,
            }
        )
    return pd.DataFrame(rows)
