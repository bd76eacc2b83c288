"""Text heuristics behind live hints and the pre-submission checklist."""

from __future__ import annotations

import pytest

from workbook.quality import (
    MIN_REFLECTION_WORDS,
    answer_hints,
    mentions_concept,
    reflection_hints,
    word_count,
)

SPECIFIC = (
    "Working through Learn the Basics I reviewed how tensors and autograd fit together. "
    "I had used loss.backward() before without knowing that it fills the .grad of every "
    "parameter with requires_grad, and that optimizer.zero_grad() is needed because "
    "gradients accumulate. The Dataset and DataLoader part was new to me: batching and "
    "shuffling come for free, and a custom Dataset only needs __len__ and __getitem__. "
    "I typed the training loop myself and broke it twice by forgetting model.train(), "
    "which taught me what eval mode changes for dropout. Next I want to read about "
    "torch.compile and profile the loop."
)
VAGUE = " ".join(["It was a really nice experience and I enjoyed it a lot overall."] * 8)


def codes(hints):
    return {hint.code for hint in hints}


def test_word_count_counts_code_and_contractions_as_one_word_each():
    assert word_count("I don't use nn.Module here.") == 5
    assert word_count("") == 0
    assert word_count("   \n ") == 0


def test_empty_reflection_is_reported_missing_and_nothing_else():
    hints = reflection_hints("   ")
    assert codes(hints) == {"reflection_missing"}
    assert hints[0].level == "missing"


def test_specific_reflection_of_enough_words_gets_no_hint():
    assert word_count(SPECIFIC) >= MIN_REFLECTION_WORDS
    assert reflection_hints(SPECIFIC) == []


def test_short_reflection_reports_its_word_count():
    text = "I learned about tensors and autograd."
    hints = reflection_hints(text)
    assert codes(hints) == {"reflection_short"}
    assert f"{word_count(text)} words" in hints[0].message


def test_long_but_vague_reflection_asks_for_concepts():
    assert word_count(VAGUE) >= MIN_REFLECTION_WORDS
    assert codes(reflection_hints(VAGUE)) == {"reflection_vague"}


@pytest.mark.parametrize(
    "text",
    [
        "I finally get `zero_grad`",
        "torch.nn.Linear was new",
        "ImageFolder saves time",
        "backward() works",
    ],
)
def test_quoted_code_counts_as_a_concrete_concept(text):
    assert mentions_concept(text)


def test_plain_feelings_are_not_a_concept():
    assert not mentions_concept("It was fun and I liked it very much.")


@pytest.mark.parametrize("qid", ["Q1", "Q2", "Q3"])
def test_empty_answer_is_missing(qid):
    assert codes(answer_hints(qid, "")) == {"answer_missing"}


def test_q1_in_words_gets_the_tokens_hint():
    text = "The batch is 1, then the number of words in the phrase, then the vocabulary size."
    assert "q1_words" in codes(answer_hints("Q1", text))


def test_q1_without_tokens_or_words_asks_for_the_unit():
    text = "Batch of one, five positions, and the vocabulary size."
    assert "q1_no_tokens" in codes(answer_hints("Q1", text))


def test_q1_in_tokens_with_all_dimensions_gets_no_hint():
    text = (
        "1 is the batch size, 5 the number of tokens (not words) in the input, and the last "
        "number is the vocabulary size: a score for every possible next token."
    )
    assert answer_hints("Q1", text) == []


def test_q1_counting_words_despite_mentioning_tokens_is_flagged():
    text = "Batch size 1, the number of words in the phrase, and one score per vocab token."
    assert "q1_words" in codes(answer_hints("Q1", text))


def test_q1_missing_a_dimension_asks_about_all_three():
    assert "q1_dimensions" in codes(answer_hints("Q1", "It has one row per token."))


def test_q2_read_as_second_most_likely_is_flagged():
    assert "q2_rank" in codes(answer_hints("Q2", "It gives the second most likely token."))
    assert answer_hints("Q2", "The prediction made at the second-to-last token.") == []


def test_q3_greedy_only_is_flagged():
    text = "Each step take the argmax, append it to the phrase and run the model again."
    assert codes(answer_hints("Q3", text)) == {"q3_greedy_only"}


@pytest.mark.parametrize(
    "text",
    [
        "Greedy argmax, or sample from the softmax with a temperature.",
        "Take the most likely token, or use top-k / top-p, or beam search.",
    ],
)
def test_q3_naming_alternatives_passes(text):
    assert answer_hints("Q3", text) == []


def test_unknown_question_only_checks_emptiness():
    assert answer_hints("Q9", "words words") == []
