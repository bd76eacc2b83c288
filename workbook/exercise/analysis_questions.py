"""The analysis questions Q1-Q3 as data: a prompt, a hint, and the rubric TAs grade against.

The hint points the way without giving the answer; the rubric is for TAs only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """A free-text analysis question, graded by TAs.

    Attributes:
        id: ``"q1"``, ``"q2"``, ``"q3"``.
        title: short heading, e.g. ``"Q1. The shape of the logits"``.
        prompt: the question, markdown.
        hint: a nudge in the right direction; never the answer.
        rubric: what a good answer contains, for TAs only.
    """

    id: str
    title: str
    prompt: str
    hint: str
    rubric: tuple[str, ...]


QUESTIONS = (
    Question(
        id="q1",
        title="Q1. The shape of the logits",
        prompt="Explain the shape of `model_output.logits`: what does each number mean?",
        hint=(
            "Take the three numbers one at a time. What did you give the model (how many "
            "phrases, and how long is the phrase in the units the model actually reads)? "
            "What does the model give a score to at each position?"
        ),
        rubric=(
            "First dimension: the batch size, 1 because we passed one phrase.",
            "Second dimension: the sequence length in tokens (not words).",
            "Third dimension: the vocabulary size, one score per possible next token.",
            "There is a full set of next-token scores at every position of the phrase.",
        ),
    ),
    Question(
        id="q2",
        title="Q2. Using -2 instead of -1",
        prompt=(
            "Change the `-1` that picks the last token's logits to `-2`. What does the "
            "variable hold now, and what does its argmax stand for?"
        ),
        hint=(
            "Position i of the logits holds the model's scores for the token that comes "
            "after token i, having seen only tokens 0..i. Which token of your phrase comes "
            "after the second-to-last one? Compare the argmax with it."
        ),
        rubric=(
            "The scores for the token that follows the second-to-last token: the model's "
            "prediction of the phrase's last token given only the tokens before it.",
            "Its argmax is the token the model thought most likely at that position.",
            "Compares the argmax with the real last token (it may or may not match).",
        ),
    ),
    Question(
        id="q3",
        title="Q3. From one token to a sentence",
        prompt=(
            "This notebook scores only *one* next token at a time. Generating a whole "
            "sentence needs a token at every step. What are a few different ways to adapt "
            "this approach to generate a complete sentence? No code needed."
        ),
        hint=(
            "Think about what decision(s) you make each time you generate a token: which "
            "token to take from the distribution, what to do with it next, and when to stop. "
            "Is taking the single most likely token the only option?"
        ),
        rubric=(
            "The per-step decision is which token to take: greedy (argmax) is one option.",
            "Other options: sampling from the softmax, temperature, top-k or top-p "
            "(nucleus) truncation, beam search.",
            "Append the chosen token and feed the longer phrase back into the model.",
            "When to stop: an end-of-sequence token, a length limit, or punctuation.",
        ),
    ),
)
