"""Steps 1-6 of the exercise as data: instructions, starter code, names, reference solution.

Each graded step is a :class:`Step`: the markdown shown above the cell, the starter code with
blanks (``___`` or ``...``), the names it must define, the id of its automatic check (see
``workbook.exercise.checks``) and a reference solution, which stays on the server. The
phrases and the globals ``predict_next_tokens`` may read are here too, as the steps use them.
"""

from __future__ import annotations

from dataclasses import dataclass

START_PHRASE = "This weekend I plan to"
ALTERNATIVE_PHRASE = "In a shocking finding, scientists discovered a herd of unicorns living in"
# The phrases step 6 shows; its check calls the function on *other* phrases.
STEP6_EXAMPLES = ("This weekend I plan to", "To be or not to", "For God so loved the")
# The only globals predict_next_tokens may read (the course's check_global_vars call).
ALLOWED_GLOBALS = ("torch", "tokenizer", "pd", "model")


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


GRADED_STEPS = (_STEP1, _STEP2, _STEP3, _STEP4, _STEP5, _STEP6)
