"""The logit lens: what each layer would predict if the model stopped there.

Every layer of a decoder leaves a hidden state at each position. Passing an intermediate
hidden state through the model's final norm and its output head (the same two steps the
model applies after its last layer) turns it into next-token logits, so one can watch the
prediction form layer by layer (nostalgebraist, "interpreting GPT: the logit lens", 2020).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from lm_engine.errors import InvalidInput, LMEngineError
from lm_engine.sampling import _device, _parts

__all__ = ["logit_lens"]

# Where the final norm lives in the model families the course may use.
_FINAL_NORM_PATHS = (
    ("model", "norm"),  # Llama, SmolLM2, Mistral, Qwen2, Gemma
    ("transformer", "ln_f"),  # GPT-2, GPT-J
    ("gpt_neox", "final_layer_norm"),  # Pythia, GPT-NeoX
    ("model", "decoder", "final_layer_norm"),  # OPT
)


def _final_norm(model: Any) -> torch.nn.Module:
    for path in _FINAL_NORM_PATHS:
        module = model
        for name in path:
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, torch.nn.Module):
            return module
    raise LMEngineError(
        f"the logit lens does not know where {type(model).__name__} keeps its final norm"
    )


@torch.no_grad()
def logit_lens(lm: Any, phrase: str, top: int = 5) -> pd.DataFrame:
    """The ``top`` tokens each layer would predict next, at each position of ``phrase``.

    Layer 0 is the token embeddings; layer ``L`` (the last) is the model's own output, so its
    rows equal the model's next-token prediction.

    Args:
        lm: a ``LanguageModel`` or a ``(model, tokenizer)`` pair.
        phrase: the text to read.
        top: how many tokens to list per (layer, position), 1 to 50.

    Returns:
        A long table with one row per (layer, position, rank) and columns ``layer``,
        ``position``, ``input_token`` (the token at that position), ``rank`` (1 = best),
        ``token``, ``token_id`` and ``probability``.

    Raises:
        InvalidInput: empty phrase or ``top`` out of range.
    """
    if not 1 <= top <= 50:
        raise InvalidInput(f"top must be between 1 and 50, got {top}")
    model, text = _parts(lm)
    ids = text.encode(phrase, _device(model))  # (1, n)
    out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states  # L + 1 tensors of shape (1, n, H)
    norm = _final_norm(model)
    head = model.get_output_embeddings()
    # The last entry has already been through the final norm (transformers applies it
    # before returning), so only the earlier layers get it here.
    states = torch.stack([norm(h) for h in hidden[:-1]] + [hidden[-1]])  # (L + 1, 1, n, H)
    logits = head(states[:, 0]).float()  # (L + 1, n, V)
    probs = logits.softmax(dim=-1)  # (L + 1, n, V)
    values, indices = torch.topk(probs, min(top, probs.shape[-1]), dim=-1)  # (L + 1, n, top)

    id_list = ids[0].tolist()
    input_tokens = [text.piece(id_list[:i], t) for i, t in enumerate(id_list)]
    rows = []
    for layer in range(values.shape[0]):
        for position in range(values.shape[1]):
            for rank in range(values.shape[2]):
                token_id = int(indices[layer, position, rank])
                rows.append(
                    {
                        "layer": layer,
                        "position": position,
                        "input_token": input_tokens[position],
                        "rank": rank + 1,
                        "token": text.piece(id_list[: position + 1], token_id),
                        "token_id": token_id,
                        "probability": float(values[layer, position, rank]),
                    }
                )
    return pd.DataFrame(rows)
