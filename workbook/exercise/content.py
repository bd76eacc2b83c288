"""The "Logits in Causal Language Models" exercise as data.

The notebook is a given setup cell and six graded steps; each step has instructions
(markdown), starter code with blanks (``___`` or ``...``), the names it must define, the id of
its automatic check (see ``workbook.exercise.checks``) and a reference solution. Solutions are
server-side only: the pages never show them; the tests and the end-to-end test run them.

The analysis questions Q1-Q3 are data too: a prompt, a hint that points the way without
giving the answer, and the rubric points TAs grade against.

The variable names (``batch``, ``input_ids``, ``model_output``, ...) are the course's; TAs read
the exported notebook with those names in mind, so keep them.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbook.errors import WorkbookError

__all__ = [
    "DEFAULT_MODEL",
    "INTRODUCTION",
    "START_PHRASE",
    "ALTERNATIVE_PHRASE",
    "STEP6_EXAMPLES",
    "ALLOWED_GLOBALS",
    "Question",
    "Step",
    "UnknownExercise",
    "question",
    "question_ids",
    "questions",
    "setup_code",
    "step",
    "step_ids",
    "steps",
]

DEFAULT_MODEL = "smollm2-135m"
START_PHRASE = "This weekend I plan to"
ALTERNATIVE_PHRASE = "In a shocking finding, scientists discovered a herd of unicorns living in"
# The phrases step 6 shows; its check calls the function on *other* phrases.
STEP6_EXAMPLES = ("This weekend I plan to", "To be or not to", "For God so loved the")
# The only globals predict_next_tokens may read (the course's check_global_vars call).
ALLOWED_GLOBALS = ("torch", "tokenizer", "pd", "model")


class UnknownExercise(WorkbookError, KeyError):
    """A step or question id that the exercise does not have."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else "unknown exercise id"


@dataclass(frozen=True)
class Step:
    """One notebook cell of the exercise.

    Attributes:
        id: stable id used by the store, widget keys and checks (``"setup"``, ``"step1"``...).
        number: 0 for the setup cell, 1-6 for the graded steps.
        title: short heading.
        instructions: markdown shown above the cell.
        starter_code: the code the cell starts with; blanks are ``___`` (or ``...``).
            For a given cell (``given=True``) this is the cell's whole code.
        defines: names the cell must leave in the student's namespace.
        check: id of the step's automatic check in ``workbook.exercise.checks.CHECKS``;
            ``None`` for the given setup cell.
        solution: a reference solution (server-side only, never shown to students).
        given: the cell is provided and not edited or graded (the setup cell).
    """

    id: str
    number: int
    title: str
    instructions: str
    starter_code: str
    defines: tuple[str, ...]
    check: str | None
    solution: str
    given: bool = False


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


INTRODUCTION = f"""\
In this notebook you ask a causal language model how likely each token is to be the
*next* one: first step by step, then as a reusable function `predict_next_tokens`.

Each step has a code cell with blanks (`___` or `...`) to fill in. **Run** runs the cell in
your own Python kernel, and the workbook then checks your variables against the model's own
answer for the same phrase and tells you what differs. Variables live in the kernel: after
**Restart kernel**, use **Run all above** to rebuild them.

We start from the phrase `"{START_PHRASE}"`. Once everything works, try the famous one from
the GPT-2 announcement: `"{ALTERNATIVE_PHRASE}"`.
"""

# --- setup (given) ---------------------------------------------------------------------

_SETUP_TEMPLATE = '''\
# Setup (given): imports, a helper for step 6, and the course's language model.
#
# Running this notebook somewhere else (e.g. Colab)? Replace the lines that use lm_engine
# and src with a model from the Hugging Face Hub, for example:
#     tokenizer = AutoTokenizer.from_pretrained("distilgpt2", add_prefix_space=True)
#     model = AutoModelForCausalLM.from_pretrained("distilgpt2")
# (GPT-2-family tokenizers need add_prefix_space=True.)
import dis

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import lm_engine


def check_global_vars(func, allowed_globals):
    """Raise an AssertionError naming every global variable `func` uses beyond `allowed_globals`.

    The most common bug when turning notebook code into a function is silently reading a
    global variable instead of a value computed inside the function.
    """
    # Read the bytecode for the names the function really loads as globals: an attribute
    # such as `batch.input_ids` is not a global, even if a global `input_ids` exists.
    used_globals = set()
    codes = [func.__code__]  # the function, then the comprehensions and lambdas inside it
    while codes:
        code = codes.pop()
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                if instruction.argval in func.__globals__:  # not a builtin such as len
                    used_globals.add(instruction.argval)
        codes.extend(const for const in code.co_consts if isinstance(const, type(code)))
    disallowed = sorted(name for name in used_globals if name not in allowed_globals)
    assert not disallowed, (
        f"{{func.__name__}} uses global variables it should not: {{', '.join(disallowed)}}"
    )


MODEL_NAME = {model_name!r}
src = lm_engine.resolve(MODEL_NAME)  # where this model's files are on this server
tokenizer = AutoTokenizer.from_pretrained(src.path, **src.tokenizer_kwargs)
tokenizer.pad_token = tokenizer.eos_token
# Running this cell again keeps the model already loaded: a second copy would not fit in
# the memory your kernel may use.
if "model" not in globals() or getattr(model, "name_or_path", None) != src.path:
    model = AutoModelForCausalLM.from_pretrained(src.path)
model.eval()

print(f"The vocabulary has {{len(tokenizer):,}} strings.")
print(f"The model has {{sum(p.numel() for p in model.parameters()):,}} parameters.")
'''


def setup_code(model_name: str = DEFAULT_MODEL) -> str:
    """The given setup cell, loading ``model_name`` (an lm_engine name, hub id or folder)."""
    return _SETUP_TEMPLATE.format(model_name=model_name)


_SETUP_INSTRUCTIONS = """\
This cell is given: run it first. It imports `torch`, the tokenizer and model classes from
`transformers` and `pandas`, defines a helper `check_global_vars` for step 6, loads the
course's tokenizer and model, and prints the vocabulary size and the number of parameters.

`check_global_vars(func, allowed_globals)` fails, naming the variables, when a function reads
a global variable it should not. That is the most common bug when turning notebook code
into a function: the function silently uses a value left over from an earlier cell instead
of one computed inside it.
"""

# --- steps 1-6 -------------------------------------------------------------------------

_STEP1 = Step(
    id="step1",
    number=1,
    title="Step 1. Tokenize the phrase",
    instructions="""\
A model does not read text; it reads **token ids**. Call the `tokenizer` on `phrase`,
asking for PyTorch tensors (the `return_tensors` argument), to get `batch`. Then take the
`input_ids` out of `batch`.

Look at the result: how many tokens does the phrase have? Is that the number of words?
""",
    starter_code=f'''\
phrase = "{START_PHRASE}"
# Later, try: phrase = "{ALTERNATIVE_PHRASE}"

batch = tokenizer(phrase, return_tensors=___)
input_ids = batch[___]
input_ids
''',
    defines=("phrase", "batch", "input_ids"),
    check="step1",
    solution=f'''\
phrase = "{START_PHRASE}"
batch = tokenizer(phrase, return_tensors="pt")
input_ids = batch["input_ids"]
input_ids
''',
)

_STEP2 = Step(
    id="step2",
    number=2,
    title="Step 2. Run the model",
    instructions="""\
Call `model` on `input_ids` to get `model_output`. Do it inside `with torch.no_grad():`:
we only want the model's predictions, not to train it, so PyTorch need not keep track of
what it would need to compute gradients (that saves time and memory).

Then print the shape of `model_output.logits` as a list. For a phrase of 5 tokens it is
`[1, 5, vocabulary size]`.
""",
    starter_code="""\
with torch.no_grad():
    model_output = model(___)

print(list(___))
""",
    defines=("model_output",),
    check="step2",
    solution="""\
with torch.no_grad():
    model_output = model(input_ids)

print(list(model_output.logits.shape))
""",
)

_STEP3 = Step(
    id="step3",
    number=3,
    title="Step 3. The logits for the last token",
    instructions="""\
`model_output.logits` holds a score (a *logit*) for every possible next token, at every
position of the phrase. We want the scores for what comes **after the last token** of the
phrase: `last_token_logits`, a 1-D tensor with one entry per vocabulary string.

Hint: think about what each number in the shape of `model_output.logits` means, and index
each dimension accordingly. Then assert the shape you expect.
""",
    starter_code="""\
last_token_logits = model_output.logits[___]
assert last_token_logits.shape == ___
""",
    defines=("last_token_logits",),
    check="step3",
    solution="""\
last_token_logits = model_output.logits[0, -1]
assert last_token_logits.shape == (model_output.logits.shape[-1],)
""",
)

_STEP4 = Step(
    id="step4",
    number=4,
    title="Step 4. From logits to probabilities",
    instructions="""\
Logits are unnormalised scores. **Softmax** over the last dimension turns them into a
probability distribution over the next token: `last_token_probabilities`.

Then find the id of the most likely next token with `argmax` (`most_likely_token_id`),
decode it to its string (`most_likely_token`) and read its probability
(`most_likely_token_probability`).

Print the phrase, then the token id, the token's string in repr form (`!r`, so spaces show)
and its probability as a percentage with two decimals (`:.2%`).
""",
    starter_code="""\
last_token_probabilities = ___
most_likely_token_id = ___
most_likely_token = ___
most_likely_token_probability = ___

print(phrase)
print(f"Most likely next token: id {___}, {___!r}, probability {___:.2%}")
""",
    defines=(
        "last_token_probabilities",
        "most_likely_token_id",
        "most_likely_token",
        "most_likely_token_probability",
    ),
    check="step4",
    solution="""\
last_token_probabilities = last_token_logits.softmax(dim=-1)
most_likely_token_id = last_token_probabilities.argmax()
most_likely_token = tokenizer.decode(most_likely_token_id)
most_likely_token_probability = last_token_probabilities[most_likely_token_id]

print(phrase)
print(
    f"Most likely next token: id {most_likely_token_id.item()}, {most_likely_token!r}, "
    f"probability {most_likely_token_probability.item():.2%}"
)
""",
)

_STEP5 = Step(
    id="step5",
    number=5,
    title="Step 5. The ten most likely next tokens",
    instructions="""\
Use `topk` to get the 10 most likely next tokens: `most_likely_tokens` has `.values` (the
probabilities) and `.indices` (the token ids). Check that the first index is the argmax
you found in step 4.

Decode each id with a list comprehension, look up each probability, and build a table
`most_likely_tokens_df` with columns `tokens` and `probabilities`. Show it with a colour
gradient (`.style.background_gradient()`): that gradient is just a colour scale, nothing to
do with gradient descent.
""",
    starter_code="""\
most_likely_tokens = ___
assert most_likely_tokens.indices[0] == ___

decoded_tokens = [___ for token_id in most_likely_tokens.indices]
probabilities_of_most_likely_tokens = ___

most_likely_tokens_df = pd.DataFrame(
    {"tokens": decoded_tokens, "probabilities": probabilities_of_most_likely_tokens}
)
most_likely_tokens_df.style.background_gradient(cmap="Blues")
""",
    defines=("most_likely_tokens", "decoded_tokens", "most_likely_tokens_df"),
    check="step5",
    solution="""\
most_likely_tokens = last_token_probabilities.topk(10)
assert most_likely_tokens.indices[0] == most_likely_token_id

decoded_tokens = [tokenizer.decode(token_id) for token_id in most_likely_tokens.indices]
probabilities_of_most_likely_tokens = last_token_probabilities[most_likely_tokens.indices]

most_likely_tokens_df = pd.DataFrame(
    {"tokens": decoded_tokens, "probabilities": probabilities_of_most_likely_tokens}
)
most_likely_tokens_df.style.background_gradient(cmap="Blues")
""",
)

_STEP6_CALLS = "\n".join(
    f'display(predict_next_tokens({p!r}, k=5).style.background_gradient(cmap="Blues"))'
    for p in STEP6_EXAMPLES
)

_STEP6 = Step(
    id="step6",
    number=6,
    title="Step 6. A reusable function: predict_next_tokens",
    instructions=f"""\
Write `predict_next_tokens(phrase, k)` that returns the table of step 5 (columns `tokens`
and `probabilities`) for the `k` most likely next tokens after `phrase`.

- Build it only from code you already wrote above.
- Clean it up: it returns the table and prints or displays nothing else.
- Put a short comment on what each step does.
- It must pass `check_global_vars(predict_next_tokens, allowed_globals={list(ALLOWED_GLOBALS)})`:
  inside the function, use its arguments and values you compute there, not variables from
  earlier cells.

The check calls your function on phrases and values of `k` you have not seen.
""",
    starter_code=f"""\
def predict_next_tokens(phrase, k):
    ...


check_global_vars(predict_next_tokens, allowed_globals={list(ALLOWED_GLOBALS)})

{_STEP6_CALLS}
""",
    defines=("predict_next_tokens",),
    check="step6",
    solution=f"""\
def predict_next_tokens(phrase, k):
    # Tokenize the phrase: a batch of one sequence of token ids, (1, n).
    input_ids = tokenizer(phrase, return_tensors="pt")["input_ids"]
    # Run the model; no gradients needed. Logits: (1, n, vocabulary size).
    with torch.no_grad():
        logits = model(input_ids).logits
    # Scores for the token after the last one, as probabilities: (vocabulary size,).
    probabilities = logits[0, -1].softmax(dim=-1)
    # The k most likely next tokens: their probabilities and ids.
    top = probabilities.topk(k)
    # Decode each id to its string and put tokens and probabilities in a table.
    tokens = [tokenizer.decode(token_id) for token_id in top.indices]
    return pd.DataFrame({{"tokens": tokens, "probabilities": top.values}})


check_global_vars(predict_next_tokens, allowed_globals={list(ALLOWED_GLOBALS)})

{_STEP6_CALLS}
""",
)


def _setup_step(model_name: str) -> Step:
    code = setup_code(model_name)
    return Step(
        id="setup",
        number=0,
        title="Setup",
        instructions=_SETUP_INSTRUCTIONS,
        starter_code=code,
        defines=("torch", "pd", "tokenizer", "model", "check_global_vars"),
        check=None,
        solution=code,
        given=True,
    )


_GRADED_STEPS = (_STEP1, _STEP2, _STEP3, _STEP4, _STEP5, _STEP6)


def steps(model_name: str = DEFAULT_MODEL) -> list[Step]:
    """The notebook's cells in order: the given setup cell, then steps 1-6.

    Args:
        model_name: the model the setup cell loads (the app's ``Settings.model_name``).
    """
    return [_setup_step(model_name), *_GRADED_STEPS]


def step_ids() -> list[str]:
    """Ids of every cell, in notebook order."""
    return [s.id for s in steps()]


def step(step_id: str, model_name: str = DEFAULT_MODEL) -> Step:
    """The cell with id ``step_id``.

    Raises:
        UnknownExercise: no such step.
    """
    for candidate in steps(model_name):
        if candidate.id == step_id:
            return candidate
    raise UnknownExercise(f"There is no step {step_id!r}; the steps are {step_ids()}.")


# --- analysis questions ----------------------------------------------------------------

_QUESTIONS = (
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


def questions() -> list[Question]:
    """The analysis questions Q1-Q3, in order."""
    return list(_QUESTIONS)


def question_ids() -> list[str]:
    """Ids of the analysis questions, in order."""
    return [q.id for q in _QUESTIONS]


def question(question_id: str) -> Question:
    """The question with id ``question_id``.

    Raises:
        UnknownExercise: no such question.
    """
    for candidate in _QUESTIONS:
        if candidate.id == question_id:
            return candidate
    raise UnknownExercise(
        f"There is no question {question_id!r}; the questions are {question_ids()}."
    )
