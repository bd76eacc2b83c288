"""Student solutions, right and wrong, through the Run button's own path on the real model.

Every case runs cells with ``Workbook.run_step`` (what the notebook page's **Run** calls: save,
execute in the student's real Jupyter kernel, check against the engine, save) on the bundled
model, and asserts the verdict and what the message says, and for wrong answers that the
message does not give away the value the step asks for (the most likely token, its id, its
percentage; computed from the engine, never hard-coded). The course's own solution of
every step is here too (written from the course's notebook: ``batch.input_ids``, top-k of the
logits with the probabilities looked up, a function that reads ``.input_ids``).

At the end the module writes a table of every case and its verdict to the terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pytest

from workbook.config import Settings
from workbook.exercise import CAUSES, content
from workbook.service import Workbook

pytestmark = pytest.mark.slow

START = content.START_PHRASE
OTHER = "The cat sat on the"

# --- the course's reference solutions (as the course's notebook writes them) -------------
COURSE = {
    "step1": f"""\
phrase = "{START}"
batch = tokenizer(phrase, return_tensors="pt")
input_ids = batch.input_ids
input_ids
""",
    "step2": """\
with torch.no_grad():
    model_output = model(input_ids)
print(list(model_output.logits.shape))
""",
    "step3": """\
last_token_logits = model_output.logits[0, -1]
assert last_token_logits.shape == (model.config.vocab_size,)
""",
    "step4": """\
last_token_probabilities = last_token_logits.softmax(dim=-1)
most_likely_token_id = last_token_probabilities.argmax().item()
most_likely_token = tokenizer.decode(most_likely_token_id)
most_likely_token_probability = last_token_probabilities[most_likely_token_id].item()
print(phrase)
print(most_likely_token_id, f"{most_likely_token!r}", f"{most_likely_token_probability:.2%}")
""",
    "step5": """\
most_likely_tokens = last_token_logits.topk(10)
assert most_likely_tokens.indices[0] == most_likely_token_id
decoded_tokens = [tokenizer.decode(token_id) for token_id in most_likely_tokens.indices]
probabilities_of_most_likely_tokens = last_token_probabilities[most_likely_tokens.indices]
most_likely_tokens_df = pd.DataFrame(
    {"tokens": decoded_tokens, "probabilities": probabilities_of_most_likely_tokens}
)
most_likely_tokens_df.style.background_gradient(cmap="Blues")
""",
    "step6": """\
def predict_next_tokens(phrase, k):
    # tokenize the phrase
    input_ids = tokenizer(phrase, return_tensors="pt").input_ids
    # run the model, no gradients needed
    with torch.no_grad():
        model_output = model(input_ids)
    # probabilities of the token after the last one
    last_token_probabilities = model_output.logits[0, -1].softmax(dim=-1)
    # the k most likely tokens, decoded
    most_likely_tokens = last_token_probabilities.topk(k)
    decoded_tokens = [tokenizer.decode(token_id) for token_id in most_likely_tokens.indices]
    # the table
    return pd.DataFrame({"tokens": decoded_tokens, "probabilities": most_likely_tokens.values})


check_global_vars(predict_next_tokens, allowed_globals=["torch", "tokenizer", "pd", "model"])
for phrase in ["This weekend I plan to", "To be or not to", "For God so loved the"]:
    display(predict_next_tokens(phrase, k=5))
""",
}


@dataclass(frozen=True)
class Case:
    """One student attempt: cells run in order (course solutions of earlier steps first)."""

    cls: str  # the class: "correct", "accepted wrong", "cause", "no answer", "article"
    name: str
    step: int  # the step whose check gives the verdict
    code: str  # the checked cell's code
    passed: bool
    says: tuple[str, ...] = ()  # fragments the message must contain
    before: tuple[tuple[str, str], ...] = ()  # extra (step id, code) run after steps < step
    upto: int | None = None  # run the course's steps 1..upto first (default: step - 1)
    secret: bool = True  # the message must not show the step's answer values
    extra: dict = field(default_factory=dict)


def course(step: int, old: str = "", new: str = "") -> str:
    code = COURSE[f"step{step}"]
    if old:
        assert old in code, old
        code = code.replace(old, new)
    return code


CASES = [
    # 14.1: correct solutions pass, the course's own among them.
    *[Case("correct", f"course's step {n}", n, COURSE[f"step{n}"], True) for n in range(1, 7)],
    Case(
        "correct",
        "step 1: batch['input_ids']",
        1,
        course(1, "batch.input_ids", 'batch["input_ids"]'),
        True,
    ),
    Case("correct", "step 3: [:, -1, :][0]", 3, course(3, "[0, -1]", "[:, -1, :][0]"), True),
    Case("correct", "step 4: tensors, no .item()", 4, content.step("step4").solution, True),
    Case(
        "correct",
        "step 5: torch.topk(probabilities, k=10)",
        5,
        course(5, "last_token_logits.topk(10)", "torch.topk(last_token_probabilities, k=10)"),
        True,
    ),
    Case(
        "correct",
        "step 6: model(**batch), batch.input_ids",
        6,
        course(
            6,
            'input_ids = tokenizer(phrase, return_tensors="pt").input_ids',
            'batch = tokenizer(phrase, return_tensors="pt")\n    input_ids = batch.input_ids',
        ).replace("model(input_ids)", "model(**batch)"),
        True,
    ),
    # 14.2: a wrong solution is no longer accepted.
    Case(
        "accepted wrong",
        "step 2 without torch.no_grad()",
        2,
        "model_output = model(input_ids)\nprint(list(model_output.logits.shape))\n",
        False,
        ("torch.no_grad()", "memory"),
    ),
    Case(
        "accepted wrong",
        "step 2 with torch.enable_grad()",
        2,
        course(2, "torch.no_grad()", "torch.enable_grad()"),
        False,
        ("requires_grad=True",),
    ),
    Case(
        "accepted wrong",
        "step 6 without no_grad",
        6,
        course(6, "    with torch.no_grad():\n        model_output", "    model_output").split(
            "\n\ncheck_global_vars"
        )[0],
        False,
        ("requires grad", "torch.no_grad()"),
    ),
    # 14.3: the cause is named.
    Case(
        "cause",
        "new phrase in step 1, step 2 not re-run",
        3,
        COURSE["step3"],
        False,
        ("`model_output` (step 2) does not belong", "Run all above"),
        before=(("step1", course(1, START, OTHER)),),
        upto=2,
    ),
    Case(
        "cause",
        "phrase changed, step 1 not re-run",
        2,
        COURSE["step2"],
        False,
        (f"tokens of {START!r}", f"`phrase` is now {OTHER!r}", "Run all above"),
        before=(("step1", COURSE["step1"]), ("step2", f"phrase = {OTHER!r}")),
        upto=0,
    ),
    Case(
        "cause",
        "new phrase, step 4 re-run before 3",
        4,
        COURSE["step4"],
        False,
        ("do not belong", "Run all above"),
        before=(("step1", course(1, START, OTHER)), ("step2", COURSE["step2"])),
        upto=3,
    ),
    Case(
        "cause",
        "attention mask passed as ids (step 2)",
        2,
        course(2, "model(input_ids)", 'model(batch["attention_mask"])'),
        False,
        ("attention mask instead of the token ids",),
    ),
    Case(
        "cause",
        "attention mask as input_ids (step 1)",
        1,
        course(1, "batch.input_ids", "batch.attention_mask"),
        False,
        ("only 1s", "attention mask"),
    ),
    Case(
        "cause",
        "softmax already applied in step 3",
        3,
        course(3, "[0, -1]", "[0, -1].softmax(dim=-1)"),
        False,
        ("already holds probabilities", "softmax belongs to step 4"),
    ),
    Case(
        "cause",
        "softmax twice (step 3 had it)",
        4,
        COURSE["step4"],
        False,
        ("Softmax was applied twice",),
        before=(("step3", course(3, "[0, -1]", "[0, -1].softmax(dim=-1)")),),
    ),
    Case(
        "cause",
        "log_softmax in step 4",
        4,
        course(4, "last_token_logits.softmax(dim=-1)", "last_token_logits.log_softmax(dim=-1)"),
        False,
        ("log-probabilities",),
    ),
    Case(
        "cause",
        "position -2 in step 3",
        3,
        course(3, "[0, -1]", "[0, -2]"),
        False,
        ("token position", "after the last token"),
    ),
    Case(
        "cause",
        "argmin in step 4",
        4,
        course(4, "last_token_probabilities.argmax()", "last_token_probabilities.argmin()"),
        False,
        ("*least* likely",),
    ),
    Case(
        "cause",
        "probability kept as a percentage",
        4,
        course(4, "[most_likely_token_id].item()", "[most_likely_token_id].item() * 100").replace(
            ":.2%", ":.2f"
        ),
        False,
        ("is a percentage", "fraction between 0 and 1"),
    ),
    Case(
        "cause",
        "probability read from the logits",
        4,
        course(
            4,
            "last_token_probabilities[most_likely_token_id].item()",
            "last_token_logits[most_likely_token_id].item()",
        ),
        False,
        ("is a logit, not a probability",),
    ),
    Case(
        "cause",
        "printed percentage multiplied twice",
        4,
        course(
            4,
            'f"{most_likely_token_probability:.2%}"',
            'f"{most_likely_token_probability * 100:.2%}"',
        ),
        False,
        ("100 times too large",),
    ),
    Case(
        "cause",
        "raw vocabulary entries in the table",
        5,
        course(5, "tokenizer.decode(token_id)", "tokenizer.convert_ids_to_tokens(int(token_id))"),
        False,
        ("raw entries", "decode each id"),
    ),
    Case(
        "cause",
        "table holds logits",
        5,
        course(
            5, "last_token_probabilities[most_likely_tokens.indices]", "most_likely_tokens.values"
        ),
        False,
        ("'probabilities' are logits",),
    ),
    Case(
        "cause",
        "table in reverse order",
        5,
        course(
            5,
            "for token_id in most_likely_tokens.indices]",
            "for token_id in most_likely_tokens.indices.flip(0)]",
        ),
        False,
        ("right ones in another order",),
    ),
    Case(
        "cause",
        "function reads a global it never defines",
        6,
        course(6, '    input_ids = tokenizer(phrase, return_tensors="pt").input_ids\n', "").split(
            "\n\ncheck_global_vars"
        )[0],
        False,
        ("reads global variables it should not: input_ids",),
    ),
    Case(
        "cause",
        "function ignores k",
        6,
        course(6, "topk(k)", "topk(5)").split("\n\ncheck_global_vars")[0],
        False,
        ("returns 5 rows whatever `k` is",),
    ),
    Case(
        "cause",
        "function ignores its phrase",
        6,
        course(
            6,
            'tokenizer(phrase, return_tensors="pt")',
            'tokenizer("To be or not to", return_tensors="pt")',
        ).split("\n\ncheck_global_vars")[0],
        False,
        ("same most likely token for every phrase",),
    ),
    # 14.4: what kind of thing is wrong, never the value to find.
    Case(
        "no answer",
        "id of the first position",
        4,
        course(
            4,
            "last_token_probabilities.argmax().item()",
            "model_output.logits[0, 0].argmax().item()",
        ),
        False,
        ("most likely token after position 0",),
    ),
    Case(
        "no answer",
        "token as the id's text",
        4,
        course(4, "tokenizer.decode(most_likely_token_id)", "str(most_likely_token_id)"),
        False,
        ("the id written as text",),
    ),
    Case(
        "no answer",
        "token in raw vocabulary spelling",
        4,
        course(
            4,
            "tokenizer.decode(most_likely_token_id)",
            "tokenizer.convert_ids_to_tokens(most_likely_token_id)",
        ),
        False,
        ("raw entry",),
    ),
    Case(
        "no answer",
        "probability of the wrong token",
        4,
        course(
            4,
            "last_token_probabilities[most_likely_token_id].item()",
            "last_token_probabilities[0].item()",
        ),
        False,
        ("not the probability of the most likely next token",),
    ),
    Case(
        "no answer",
        "printed without the id",
        4,
        course(4, "print(most_likely_token_id, ", "print("),
        False,
        ("does not show the most likely token's id",),
    ),
    Case(
        "no answer",
        "top 10 of the first position",
        5,
        course(5, "last_token_logits.topk(10)", "model_output.logits[0, 0].topk(10)").replace(
            "assert most_likely_tokens.indices[0] == most_likely_token_id\n", ""
        ),
        False,
        ("top tokens after position 0",),
    ),
    # 14.6: articles, and what to do with a BatchEncoding.
    Case(
        "article",
        "input_ids as an ndarray",
        1,
        course(1, 'return_tensors="pt"', 'return_tensors="np"'),
        False,
        ("is an ndarray", "PyTorch tensors"),
    ),
    Case(
        "article",
        "input_ids as an Encoding",
        1,
        course(1, "batch.input_ids", "batch.encodings[0]"),
        False,
        ("is an Encoding", "'input_ids' entry"),
    ),
    Case(
        "article",
        "input_ids as the BatchEncoding",
        1,
        course(1, "batch.input_ids", "batch"),
        False,
        ("whole BatchEncoding", "Take only its 'input_ids' entry"),
    ),
    Case(
        "article",
        "phrase as an int",
        1,
        COURSE["step1"] + "phrase = 42\n",
        False,
        ("`phrase` is an int",),
    ),
]

# The structured cause each "cause" case's Run must store (the Class page counts these).
EXPECTED_CAUSE = {
    "new phrase in step 1, step 2 not re-run": "stale_phrase",
    "phrase changed, step 1 not re-run": "stale_phrase",
    "new phrase, step 4 re-run before 3": "stale_phrase",
    "attention mask passed as ids (step 2)": "attention_mask_as_ids",
    "attention mask as input_ids (step 1)": "attention_mask_as_ids",
    "softmax already applied in step 3": "softmax_too_early",
    "softmax twice (step 3 had it)": "softmax_twice",
    "log_softmax in step 4": "log_softmax",
    "position -2 in step 3": "wrong_position",
    "argmin in step 4": "least_likely",
    "probability kept as a percentage": "percentage_not_fraction",
    "probability read from the logits": "logit_not_probability",
    "printed percentage multiplied twice": "percentage_times_100",
    "raw vocabulary entries in the table": "raw_vocab_entry",
    "table holds logits": "logit_not_probability",
    "table in reverse order": "wrong_order",
    "function reads a global it never defines": "reads_globals",
    "function ignores k": "ignores_k",
    "function ignores its phrase": "ignores_phrase",
    "step 2 without torch.no_grad()": "tracks_gradients",
    "step 6 without no_grad": "tracks_gradients",
}

_TABLE: list[tuple[str, str, str, str, str]] = []
RUNS: list[tuple[int, str, object]] = []  # (student, step, CheckResult or None), in order


@pytest.fixture(scope="module")
def workbook(tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("cases")
    settings = replace(
        Settings(),
        db_path=folder / "workbook.db",
        work_dir=folder / "kernels",
        cell_timeout_s=300,
    )
    wb = Workbook(settings)
    real_run_step = wb.run_step

    def recorded(user_id, step_id, code=None):
        run = real_run_step(user_id, step_id, code)
        RUNS.append((user_id, step_id, run.check))
        return run

    wb.run_step = recorded  # every Run of the module, for the class view's test at the end
    user = wb.register("Case Student", "cases@example.org", "case-password")
    setup = wb.run_step(user.id, "setup")
    assert setup.result.status == "ok", setup.result.outputs
    yield wb, user.id
    wb.kernels.shutdown_all()
    _write_table(request.config)


def _write_table(config) -> None:
    """The table of cases and verdicts, on the terminal even without ``-s``."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not _TABLE:
        return
    widths = [max(len(row[i]) for row in [*_TABLE, _HEADER]) for i in range(4)]
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # past pytest's output capture
        reporter.write_line("")
        reporter.write_line("Checks on the real model, through Workbook.run_step (the Run button):")
        for row in [_HEADER, *_TABLE]:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            reporter.write_line(" | ".join([*cells, row[4]]))


_HEADER = ("class", "case", "step", "verdict", "first line of the message")


def _secrets(lm, phrase: str) -> list[str]:
    """Patterns of what step 4 asks the student to find: the token, its id, its percentage."""
    top = lm.top_k(phrase, k=1)
    token, token_id = str(top["tokens"][0]), int(top["token_ids"][0])
    percentage = f"{float(top['probabilities'][0]):.2%}"
    return [re.escape(repr(token)), rf"(?<![\d.,]){token_id}(?![\d])", re.escape(percentage)]


def _unseen_secrets(lm) -> list[str]:
    """Step 6: the expected tables of the phrases the student has not seen."""
    from workbook.exercise.inspection import UNSEEN_CALLS

    return [re.escape(repr(str(lm.top_k(p, k=1)["tokens"][0]))) for p, _ in UNSEEN_CALLS]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.cls}: {c.name}" for c in CASES])
def test_case(workbook, case: Case):
    wb, user_id = workbook
    upto = case.step - 1 if case.upto is None else case.upto
    for number in range(1, upto + 1):
        run = wb.run_step(user_id, f"step{number}", COURSE[f"step{number}"])
        assert run.result.status == "ok", (number, run.result.outputs)
    for step_id, code in case.before:
        run = wb.run_step(user_id, step_id, code)
        assert run.result.status == "ok", (step_id, run.result.outputs)
    run = wb.run_step(user_id, f"step{case.step}", case.code)
    assert run.result.status == "ok", run.result.outputs
    check = run.check
    message = check.message
    _TABLE.append(
        (
            case.cls,
            case.name,
            str(case.step),
            "pass" if check.passed else "fail",
            (message.splitlines()[1] if not check.passed else message.splitlines()[0])[:110],
        )
    )
    assert check.passed is case.passed, message
    saved = wb.cells(user_id)[f"step{case.step}"]
    assert saved.cause == check.cause  # the Run stores the cause id beside the message
    if case.passed:
        assert check.cause is None
    else:
        assert check.cause in CAUSES, check.cause
        assert check.cause == EXPECTED_CAUSE.get(case.name, check.cause), message
    for fragment in case.says:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if not case.passed and case.secret:
        lm = wb.engine()
        phrase = wb.kernels.kernel_for(str(user_id)).inspect(
            "__workbook_result__ = phrase if isinstance(phrase, str) else ''"
        )
        secrets = _unseen_secrets(lm) if case.step == 6 else _secrets(lm, phrase or START)
        for secret in secrets:
            assert not re.search(secret, message), f"{secret!r} given away in {message!r}"


def test_saved_cell_keeps_the_verdict_and_the_message(workbook):
    """The Run button saves what the check said with the code (what the TA sees later)."""
    wb, user_id = workbook
    run = wb.run_step(user_id, "step1", COURSE["step1"])
    saved = wb.cells(user_id)["step1"]
    assert saved.passed is run.check.passed is True
    assert saved.message == run.check.message


def test_class_view_counts_what_the_real_runs_said(workbook):
    """The Class page's figures over this module's real Runs, plus a second student stuck on
    step 2, equal what the test computes from the CheckResults the Run button returned."""
    from collections import defaultdict

    from workbook.classview import ClassViewOptions, class_view

    wb, first = workbook
    second = wb.register("Stuck Student", "stuck@example.org", "case-password").id
    assert wb.run_step(second, "setup").result.status == "ok"
    wrong = "model_output = model(input_ids)\n"  # no torch.no_grad()
    wb.run_step(second, "step2", COURSE["step1"] + wrong)  # step 1 in the same cell: one run less
    for _ in range(2):  # the same cause three times in a row
        wb.run_step(second, "step2", wrong)
    ta = wb.store.create_user("ta-cases@example.org", "Case TA", "case-password", role="ta")
    view = class_view(wb.store, ta, ClassViewOptions(stuck_minutes=600))

    runs = defaultdict(list)  # (student, step) -> verdicts in order
    for user_id, step_id, check in RUNS:
        runs[(user_id, step_id)].append(check)
    funnel = {r["step_id"]: r for r in view.funnel}
    for step in content.step_ids():
        pairs = {k: v for k, v in runs.items() if k[1] == step}
        assert funnel[step]["ran"] == len(pairs), step
        if step == "setup":
            continue
        ever = sum(any(c is not None and c.passed for c in v) for v in pairs.values())
        now = sum(v[-1] is not None and v[-1].passed for v in pairs.values())
        assert (funnel[step]["ever_passed"], funnel[step]["pass_now"]) == (ever, now), step
    want_causes = defaultdict(int)
    want_next = defaultdict(lambda: [0, 0, 0])
    for (_user, step), verdicts in runs.items():
        failing = [c for c in verdicts if c is not None and not c.passed]
        if failing:
            want_causes[(step, failing[-1].cause)] += 1
        last = {}
        for i, c in enumerate(verdicts):
            if c is not None and not c.passed:
                last[c.cause] = i
        for cause, i in last.items():
            counts = want_next[(step, cause)]
            counts[0] += 1
            if i + 1 < len(verdicts):
                counts[1] += 1
                counts[2] += bool(verdicts[i + 1] is not None and verdicts[i + 1].passed)
    assert {(r["step_id"], r["cause"]): r["students_all"] for r in view.causes} == want_causes
    got_next = {
        (r["step_id"], r["cause"]): [r["students"], r["followed"], r["passed_next"]]
        for r in view.next_runs
    }
    assert got_next == dict(want_next)
    stuck = {(r["user_id"], r["step_id"]): r for r in view.stuck}
    assert stuck[(second, "step2")]["failing_runs"] == 3
    assert stuck[(second, "step2")]["last_cause"] == "tracks_gradients"
    assert stuck[(second, "step2")]["diff"].startswith("--- previous")  # step 1's lines went
    assert "-phrase = " in stuck[(second, "step2")]["diff"]
    for step in content.step_ids()[1:]:
        members = [r for r in view.clusters if r["step_id"] == step]
        assert sum(r["size"] for r in members) == funnel[step]["ran"]
        assert sum(r["passing"] for r in members) == funnel[step]["pass_now"]
