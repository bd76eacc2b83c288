"""Submissions for the export and checklist tests: one complete, and ways to spoil it.

``complete_submission()`` is built by hand (fixed texts, fixed outputs) so the golden
notebook does not change when the exercise wording is edited. ``fill_store()`` writes a
complete student's work through the real store and the real exercise data.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from db import Store, TutorialEntry, TutorialLog
from workbook.exercise import content
from workbook.submission.snapshot import (
    QuestionContent,
    ReflectionContent,
    StepContent,
    Submission,
)

BUILT_AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

GOOD_ANSWERS = {
    "q1": (
        "The shape is [1, 5, 49152]: the batch size is 1 because we passed one phrase, 5 is "
        "the sequence length in tokens (not words), and 49152 is the vocabulary size, one "
        "score per possible next token at every position."
    ),
    "q2": (
        "It holds the scores for the token after the second-to-last token, that is the "
        "model's guess for the last token of the phrase; its argmax is the token it found "
        "most likely there, which we can compare with the real last token."
    ),
    "q3": (
        "At each step we choose a token from the distribution: greedy argmax, sampling with "
        "a temperature, top-k or top-p (nucleus) sampling, or beam search.\n\n"
        "We append it and feed the longer phrase back in, stopping at an end-of-sequence "
        "token or a length limit:\n\n"
        "```\nwhile not done:\n    token = pick(probabilities)\n```"
    ),
}

REFLECTION_1 = (
    "Working through the tensors recipe I reviewed how a tensor stores its dtype and shape, "
    "how broadcasting lines up trailing dimensions, and why indexing with a negative number "
    "counts from the end, which is exactly what the logits exercise needed. I also learned "
    "that reshape may copy while view never does, and I practised moving tensors to a "
    "device. The part on in-place operations surprised me, and I now check requires_grad "
    "before using them. Next I want to read more about memory layout and strides."
)
REFLECTION_2 = (
    "The autograd tutorial showed me how backward builds gradients through the graph that "
    "PyTorch records during the forward pass, and why torch.no_grad() saves memory during "
    "inference, which we used in step two. I trained a tiny linear layer with an SGD "
    "optimizer and a cross-entropy loss over a few epochs and watched the loss fall. I had "
    "not understood before why gradients accumulate until you call zero_grad(), and "
    "writing the training loop myself made that clear. I would like to try Adam next."
)

STEP_OUTPUTS = {
    "setup": [
        {
            "output_type": "stream",
            "name": "stdout",
            "text": "The vocabulary has 49,152 strings.\nThe model has 134,515,008 parameters.\n",
        }
    ],
    "step2": [{"output_type": "stream", "name": "stdout", "text": "[1, 5, 49152]\n"}],
    "step4": [
        {
            "output_type": "stream",
            "name": "stdout",
            "text": "This weekend I plan to\n1083 ' go' 21.37%\n",
        }
    ],
    "step5": [
        {
            "output_type": "execute_result",
            "execution_count": 17,
            "data": {"text/plain": "  tokens  probabilities\n0     go       0.2137"},
            "metadata": {},
        }
    ],
    "step6": [
        {
            "output_type": "display_data",
            "data": {"text/plain": "  tokens  probabilities\n0     go       0.2137"},
            "metadata": {},
            # The kernel's display id: not part of nbformat, must be dropped on export.
            "transient": {"display_id": "abc"},
        }
    ],
}


# Fixed code per cell, so the golden notebook does not follow edits of the exercise text.
STEP_CODE = {
    "setup": (
        "# Elsewhere, load distilgpt2 from the Hugging Face hub instead.\n"
        "import torch\nimport pandas as pd\n"
    ),
    "step1": 'phrase = "This weekend I plan to"\nbatch = tokenizer(phrase, return_tensors="pt")\n',
    "step2": "with torch.no_grad():\n    model_output = model(input_ids)\n",
    "step3": "last_token_logits = model_output.logits[0, -1]\n",
    "step4": "last_token_probabilities = last_token_logits.softmax(dim=-1)\n",
    "step5": "most_likely_tokens = last_token_probabilities.topk(10)\n",
    "step6": (
        "def predict_next_tokens(phrase, k):\n"
        "    # Tokenize: (1, n) token ids.\n"
        '    input_ids = tokenizer(phrase, return_tensors="pt")["input_ids"]\n'
        "    with torch.no_grad():\n"
        "        logits = model(input_ids).logits\n"
        "    # Probabilities of the next token and the k best.\n"
        "    top = logits[0, -1].softmax(dim=-1).topk(k)\n"
        "    tokens = [tokenizer.decode(i) for i in top.indices]\n"
        '    return pd.DataFrame({"tokens": tokens, "probabilities": top.values})\n'
    ),
}
QUESTIONS = {
    "q1": ("Q1. The shape of the logits", "Explain the shape of `model_output.logits`."),
    "q2": ("Q2. Using -2 instead of -1", "Change the `-1` to `-2`. What does it hold now?"),
    "q3": ("Q3. From one token to a sentence", "How could you generate a *whole* sentence?"),
}


def complete_submission() -> Submission:
    """A submission with every step passing, good answers and two good reflections."""
    steps = tuple(
        StepContent(
            id=step_id,
            title="Setup" if step_id == "setup" else f"Step {step_id[-1]}. Title of {step_id}",
            instructions=f"Instructions of {step_id}.",
            code=code,
            outputs=tuple(STEP_OUTPUTS.get(step_id, [])),
            ran=True,
            passed=None if step_id == "setup" else True,
            given=step_id == "setup",
        )
        for step_id, code in STEP_CODE.items()
    )
    questions = tuple(
        QuestionContent(id=qid, title=title, prompt=prompt, answer=GOOD_ANSWERS[qid])
        for qid, (title, prompt) in QUESTIONS.items()
    )
    reflections = (
        ReflectionContent(
            slot="1",
            title="Tensors",
            category="PyTorch Recipes",
            url="https://pytorch.org/tutorials/recipes/recipes/tensors.html",
            details=(("Dates", "2026-11-20"), ("Time spent", "90 minutes")),
            text=REFLECTION_1,
        ),
        ReflectionContent(
            slot="2",
            title="A Gentle Introduction to torch.autograd",
            category="Learning PyTorch",
            url="https://pytorch.org/tutorials/beginner/blitz/autograd_tutorial.html",
            details=(("Dates", "2026-11-21, 2026-11-22"), ("Time spent", "120 minutes")),
            text=REFLECTION_2,
        ),
    )
    return Submission(
        student_name="Ana Núñez",
        model_name="smollm2-135m",
        introduction="An introduction.",
        steps=tuple(steps),
        questions=questions,
        tutorial_path="tutorials",
        reflections=reflections,
    )


def entry(slot: str, category: str, reflection: str, **changes) -> TutorialEntry:
    """A complete tutorial entry for ``slot``."""
    base = TutorialEntry(
        id=int(slot),
        user_id=1,
        created_at=BUILT_AT,
        slot=slot,
        category=category,
        title=f"Tutorial {slot}",
        url=f"https://pytorch.org/tutorials/{slot}.html",
        from_catalog=True,
        dates=("2026-11-20",),
        minutes=60,
        notes="",
        reflection=reflection,
    )
    return replace(base, **changes)


def complete_log() -> TutorialLog:
    """The tutorial log matching ``complete_submission``."""
    return TutorialLog(
        user_id=1,
        path="tutorials",
        entries={
            "1": entry("1", "PyTorch Recipes", REFLECTION_1),
            "2": entry("2", "Learning PyTorch", REFLECTION_2),
        },
    )


def new_store(path) -> Store:
    """A store that knows the exercise's step and question ids."""
    return Store(path, question_ids=content.question_ids(), step_ids=content.step_ids())


def fill_store(store: Store, user_id: int, *, outputs: bool = True) -> None:
    """Write a complete student's work: solutions run and passing, answers, two tutorials."""
    for count, step in enumerate(content.steps(), start=1):
        store.save_cell(
            user_id,
            step.id,
            code=step.solution,
            outputs=STEP_OUTPUTS.get(step.id, []) if outputs else [],
            execution_count=count,
            passed=None if step.given else True,
            message=None if step.given else "Correct.",
        )
    for question in content.questions():
        store.save_answer(user_id, question.id, GOOD_ANSWERS[question.id])
    store.set_tutorial_path(user_id, "tutorials")
    store.log_tutorial(
        user_id,
        "1",
        category="PyTorch Recipes",
        title="Tensors",
        url="https://pytorch.org/tutorials/recipes/recipes/tensors.html",
        from_catalog=True,
        dates=["2026-11-20"],
        minutes=90,
        reflection=REFLECTION_1,
    )
    store.log_tutorial(
        user_id,
        "2",
        category="Learning PyTorch",
        title="A Gentle Introduction to torch.autograd",
        url="https://pytorch.org/tutorials/beginner/blitz/autograd_tutorial.html",
        from_catalog=True,
        dates=["2026-11-21"],
        minutes=120,
        reflection=REFLECTION_2,
    )
