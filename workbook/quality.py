"""Text heuristics behind the live hints and the pre-submission checklist.

Each check answers one complaint TAs made in real feedback on this homework: reflections
missing or too vague, Q1 explained in words instead of tokens, Q2 read as "the second most
likely token", Q3 answered as if only the most likely token could ever be picked. They are
heuristics: a hint asks the student to look again, it never blocks their work, and it never
shows a model answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MIN_REFLECTION_WORDS",
    "Hint",
    "answer_hints",
    "mentions_concept",
    "reflection_hints",
    "word_count",
]

# A paragraph that says which concepts were learned and how it went rarely fits in less.
MIN_REFLECTION_WORDS = 80


@dataclass(frozen=True)
class Hint:
    """One thing worth another look.

    Attributes:
        code: a stable id (``"reflection_short"``, ``"q1_words"`` ...) for tests and checklists.
        level: ``"missing"`` (nothing written yet) or ``"warning"`` (written, worth revising).
        message: what to look at, written for the student.
    """

    code: str
    level: str
    message: str


_WORD = re.compile(r"[\w'’.+-]*\w", re.UNICODE)


def word_count(text: str) -> int:
    """Words in ``text`` as a person counts them (``nn.Module`` and ``don't`` are one each)."""
    return len(_WORD.findall(text or ""))


# Concrete things a PyTorch tutorial teaches. A reflection naming none of them is what the
# TAs called "too vague". Matched as whole words, case-insensitively.
_CONCEPTS = (
    "tensor",
    "tensors",
    "autograd",
    "gradient",
    "gradients",
    "backward",
    "backprop",
    "backpropagation",
    "requires_grad",
    "no_grad",
    "optimizer",
    "optimiser",
    "sgd",
    "adam",
    "learning rate",
    "loss",
    "loss function",
    "cross-entropy",
    "cross entropy",
    "dataset",
    "dataloader",
    "data loader",
    "batch",
    "batches",
    "epoch",
    "epochs",
    "module",
    "nn.module",
    "layer",
    "layers",
    "linear layer",
    "activation",
    "relu",
    "softmax",
    "logits",
    "convolution",
    "convolutional",
    "cnn",
    "rnn",
    "lstm",
    "transformer",
    "attention",
    "embedding",
    "embeddings",
    "dropout",
    "normalization",
    "batchnorm",
    "overfitting",
    "regularization",
    "weight decay",
    "training loop",
    "inference",
    "evaluation",
    "eval mode",
    "state_dict",
    "checkpoint",
    "transforms",
    "augmentation",
    "transfer learning",
    "fine-tuning",
    "fine tuning",
    "pretrained",
    "tensorboard",
    "profiler",
    "profiling",
    "quantization",
    "pruning",
    "torchscript",
    "torch.compile",
    "onnx",
    "cuda",
    "gpu",
    "device",
    "broadcasting",
    "reshape",
    "indexing",
    "dtype",
    "shape",
    "parameters",
    "hyperparameter",
    "hyperparameters",
    "accuracy",
    "classifier",
    "classification",
    "segmentation",
    "detection",
    "spectrogram",
    "reinforcement",
    "reward",
    "policy",
    "distributed",
    "ddp",
    "fsdp",
    "parallelism",
    "mixed precision",
    "amp",
    "fx",
    "hook",
    "hooks",
    "custom operator",
    "c++",
    "export",
    "serialization",
)
_CONCEPT_PATTERN = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(c) for c in sorted(_CONCEPTS, key=len, reverse=True))
    + r")(?![\w])",
    re.IGNORECASE,
)
# Code a student quotes: `x.backward()`, torch.nn.Linear, DataLoader(...), CamelCase classes.
_CODE_PATTERN = re.compile(
    r"`[^`]+`"  # anything in backticks
    r"|\b(?:torch|nn|F|optim)\.\w+"  # torch.something, nn.Linear ...
    r"|\b\w+\(\)"  # a call: backward()
    r"|\b[A-Z][a-z]+[A-Z]\w*"  # CamelCase: DataLoader, ImageFolder
)


def mentions_concept(text: str) -> bool:
    """Whether ``text`` names at least one concrete concept or piece of code."""
    return bool(_CONCEPT_PATTERN.search(text or "") or _CODE_PATTERN.search(text or ""))


def reflection_hints(text: str, *, min_words: int = MIN_REFLECTION_WORDS) -> list[Hint]:
    """Hints for one tutorial (or project) reflection.

    Returns:
        ``reflection_missing`` when blank; otherwise ``reflection_short`` under ``min_words``
        words and ``reflection_vague`` when no concrete concept is named. Empty when fine.
    """
    if not (text or "").strip():
        return [
            Hint(
                "reflection_missing",
                "missing",
                "The reflection is missing. Write one paragraph about working through this "
                "resource: which concepts you reviewed or learned, and how it went.",
            )
        ]
    hints = []
    words = word_count(text)
    if words < min_words:
        hints.append(
            Hint(
                "reflection_short",
                "warning",
                f"{words} words so far; aim for at least {min_words}. Say which concepts you "
                "reviewed or learned, what was new, and what you would look up next.",
            )
        )
    if not mentions_concept(text):
        hints.append(
            Hint(
                "reflection_vague",
                "warning",
                "Name the concrete concepts you reviewed or learned (a PyTorch feature, a "
                "function, an idea from the tutorial). TAs asked for specifics, not just how "
                "it felt.",
            )
        )
    return hints


_TOKEN = re.compile(r"\btoken", re.IGNORECASE)
_WORDS = re.compile(r"\bwords?\b", re.IGNORECASE)
# "tokens, not words" and similar say the right thing while using the word "words".
_WORDS_CONTRASTED = re.compile(
    r"(not|rather than|instead of|than|n't|unlike|vs\.?|versus)\s+(\w+\s+){0,2}words?\b"
    r"|\bwords?\s+(\w+\s+){0,3}(split|broken|divided|become|are\s+not|aren't|≠)",
    re.IGNORECASE,
)
_SEQUENCE_IN_WORDS = re.compile(
    r"\b(number|count|amount)\s+of\s+words\b|\bwords\s+in\s+the\s+(phrase|sentence|input|prompt)"
    r"|\b(each|every|per)\s+word\b|\blength\s+in\s+words\b",
    re.IGNORECASE,
)
_BATCH_OR_VOCAB = (re.compile(r"\bbatch", re.IGNORECASE), re.compile(r"\bvocab", re.IGNORECASE))

_GREEDY = re.compile(
    r"\b(argmax|arg max|greedy|greedily|most\s+(likely|probable)|highest\s+(probability|"
    r"score|logit)|maximum\s+probability|max\s+probability|top\s*1|best\s+token)\b",
    re.IGNORECASE,
)
_ALTERNATIVES = re.compile(
    r"\b(sampl\w*|random\w*|temperature|top[-\s]?k|top[-\s]?p|nucleus|beam\w*|"
    r"multinomial|stochastic\w*)\b",
    re.IGNORECASE,
)
_RANK_READING = re.compile(
    r"\bsecond[-\s]+(most\s+likely|most\s+probable|highest|best|largest|biggest|likeliest)"
    r"|\b2nd\s+(most|highest|best)",
    re.IGNORECASE,
)


def _answer_missing() -> Hint:
    return Hint("answer_missing", "missing", "Not answered yet.")


def answer_hints(question_id: str, text: str) -> list[Hint]:
    """Hints for an Analysis answer (``"Q1"``, ``"Q2"``, ``"Q3"``; other ids get only the
    empty-answer check).

    Returns:
        A list of hints, empty when nothing stands out.
    """
    if not (text or "").strip():
        return [_answer_missing()]
    qid = question_id.strip().upper()
    hints: list[Hint] = []
    if qid == "Q1":
        if not _TOKEN.search(text):
            if _WORDS.search(text):
                hints.append(
                    Hint(
                        "q1_words",
                        "warning",
                        "Your answer talks about words. The model never sees words: what "
                        "does it actually work on, and how does the phrase become that?",
                    )
                )
            else:
                hints.append(
                    Hint(
                        "q1_no_tokens",
                        "warning",
                        "Say what the middle number of the shape counts, in the unit the "
                        "model works with.",
                    )
                )
        elif _SEQUENCE_IN_WORDS.search(text) and not _WORDS_CONTRASTED.search(text):
            hints.append(
                Hint(
                    "q1_words",
                    "warning",
                    "You mention tokens but also count words. Are the two always the same "
                    "for this tokenizer? Check which one the shape counts.",
                )
            )
        if not all(pattern.search(text) for pattern in _BATCH_OR_VOCAB):
            hints.append(
                Hint(
                    "q1_dimensions",
                    "warning",
                    "Does your answer say what each of the three numbers in the shape stands for?",
                )
            )
    elif qid == "Q2":
        if _RANK_READING.search(text):
            hints.append(
                Hint(
                    "q2_rank",
                    "warning",
                    "The -2 picks a position in the sequence, not a rank among the "
                    "probabilities. Which token of the phrase does that position belong to?",
                )
            )
    elif qid == "Q3" and _GREEDY.search(text) and not _ALTERNATIVES.search(text):
        hints.append(
            Hint(
                "q3_greedy_only",
                "warning",
                "You describe always taking the most likely token. That is one choice; what "
                "other decisions could you make at each step about which token to take?",
            )
        )
    return hints
