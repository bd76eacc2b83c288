"""Stable ids for what a check's message names: one per distinct cause or kind of problem.

A step's comparison returns its problems as :class:`Problem` strings: the sentence the
student reads, with the id of what it names attached (``softmax_too_early``,
``stale_phrase``, ``wrong_position`` ...). The check's result carries the id of its first
problem, and the Run stores it beside the message, so the class view can count causes
without reading message text. An id never changes once shipped (stored runs keep it); a new
kind of message gets a new id here.

``GENERIC_CAUSES`` are the ids that say *that* something differs without saying why: a
failing run with one of them, or with none (a run stored before ids existed), counts as
"no specific cause", a hint that a check is missing.
"""

from __future__ import annotations

__all__ = ["CAUSES", "GENERIC_CAUSES", "Problem", "cause_label", "problem"]


class Problem(str):
    """A problem sentence (a plain ``str`` to every reader) with the id of what it names."""

    cause: str

    def __new__(cls, cause: str, text: str) -> Problem:
        if cause not in CAUSES:
            raise ValueError(f"unknown cause id {cause!r}: add it to CAUSES")
        made = super().__new__(cls, text)
        made.cause = cause
        return made


def problem(cause: str, text: str) -> Problem:
    """``text`` as the student reads it, naming the cause ``cause`` (an id of ``CAUSES``)."""
    return Problem(cause, text)


# id -> what it means, in a few words for staff (never shown to students).
CAUSES: dict[str, str] = {
    # --- generic: something differs or is missing, no reason known ----------------------
    "wrong_value": "differs from the expected value, no specific cause known",
    "not_defined": "a name the step needs is not defined",
    "read_failed": "reading a variable raised an error",
    "check_unreadable": "the check could not read the kernel's variables",
    "phrase_unusable": "`phrase` is missing, not a string, empty or too long",
    "phrase_unscorable": "the model cannot score the phrase",
    "not_a_tensor": "a value is not a PyTorch tensor",
    "wrong_dtype": "a tensor has the wrong dtype",
    "wrong_shape": "a tensor has the wrong shape",
    "nan_values": "a tensor holds NaN or infinite values",
    # --- steps 1-3 ---------------------------------------------------------------------
    "stale_phrase": "a variable left over from an older phrase or an earlier run",
    "attention_mask_as_ids": "the attention mask used as the token ids",
    "batch_without_ids": "`batch` is not what the tokenizer returns",
    "whole_encoding": "the whole tokenizer output (or an Encoding) kept as `input_ids`",
    "not_torch_tensor": "NumPy array or list instead of a PyTorch tensor",
    "tracks_gradients": "the forward pass runs without torch.no_grad()",
    "shape_as_torch_size": "the shape printed as a torch.Size",
    "shape_not_printed": "the shape is not printed as a list",
    "batch_dimension_kept": "the batch dimension kept",
    "all_positions": "the scores at every position instead of the last",
    "softmax_too_early": "softmax applied before step 4",
    "log_softmax": "log_softmax instead of the logits or softmax",
    "wrong_position": "the scores of another position than the last",
    # --- step 4 ------------------------------------------------------------------------
    "logits_not_probabilities": "softmax not applied",
    "softmax_twice": "softmax applied twice",
    "not_normalised": "probabilities that do not sum to 1",
    "id_out_of_vocab": "an argmax over more than the vocabulary",
    "least_likely": "argmin / the least likely tokens",
    "id_as_text": "the token id written as text instead of decoded",
    "raw_vocab_entry": "the vocabulary's raw entry instead of the decoded text",
    "percentage_not_fraction": "a percentage kept where a fraction belongs",
    "logit_not_probability": "a logit used as a probability",
    "probability_out_of_range": "a probability outside 0..1",
    "output_incomplete": "the printed line lacks the phrase, the id or the token's repr",
    "percentage_decimals": "the percentage not printed with two decimals",
    "percentage_times_100": "the percentage multiplied by 100 twice",
    "fraction_with_percent_sign": "the fraction printed with a % sign",
    # --- steps 5 and 6 -----------------------------------------------------------------
    "wrong_order": "the right tokens in another order",
    "table_not_dataframe": "the table is missing or not a DataFrame",
    "table_columns": "the table lacks the 'tokens' or 'probabilities' column",
    "table_row_count": "the table has the wrong number of rows",
    "tokens_not_text": "the 'tokens' column holds ids or other non-text",
    "probabilities_not_numbers": "the 'probabilities' column holds non-numbers",
    "not_a_function": "`predict_next_tokens` is not a function",
    "reads_globals": "the function reads global variables",
    "undefined_name": "the function uses a name it never defines",
    "function_raises": "the function raises an error on new phrases",
    "ignores_k": "the function ignores its argument k",
    "ignores_phrase": "the function ignores its argument phrase",
    "prints_output": "the function prints or displays instead of returning only",
    "too_few_comments": "the function has too few comments",
    "source_unreadable": "the function's source could not be read",
}

GENERIC_CAUSES: frozenset[str] = frozenset(
    {"wrong_value", "check_unreadable", "read_failed", "not_a_tensor", "wrong_shape", "nan_values"}
)


def cause_label(cause: str | None) -> str:
    """A cause id in a few words for staff (``None``: a run stored before ids existed)."""
    if cause is None:
        return "unclassified (stored before cause ids)"
    return CAUSES.get(cause, cause)
