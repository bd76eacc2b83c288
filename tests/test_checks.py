"""Step checks with a tiny random model, run in an in-process fake kernel.

Each test runs the reference solutions up to a step, then either the correct cell or a
typical wrong one, and asserts the check's verdict and that its message names what differs.
Expected values always come from the engine (``LanguageModel``) on the same tiny weights.

The fake kernel execs cells in a plain dict, compiled under file names registered in
``linecache`` as IPython does (so ``inspect.getsource`` works), and round-trips inspection
results through JSON as the real kernel's transport does.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import io
import json
import linecache
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny import make_tiny_pair

import lm_engine
from lm_engine import LanguageModel, ModelSource
from workbook.exercise import (
    check_kernel,
    checks,
    content,
    inspection,
    step_messages_5_6,
    tensors,
)
from workbook.exercise.cause_ids import CAUSES
from workbook.exercise.checks import CheckError, CheckResult, printed_text, run_check
from workbook.exercise.digest import a, tensor_values

# --- every verdict names its cause ---------------------------------------------------


@pytest.fixture(autouse=True)
def every_problem_has_a_cause_id(monkeypatch):
    """Each check in this module also proves its verdict's structured cause: every problem
    sentence carries a documented cause id, a failure's id is its first problem's, and a
    pass has none (what the Run stores beside the message for the Class page)."""
    real = checks._result

    def checked(problems, *args, **kwargs):
        result = real(problems, *args, **kwargs)
        if result.passed:
            assert result.cause is None
        else:
            causes = [getattr(p, "cause", None) for p in result.details]
            assert all(c in CAUSES for c in causes), list(zip(causes, result.details, strict=True))
            assert result.cause == causes[0]
        return result

    monkeypatch.setattr(checks, "_result", checked)


# --- a fake student kernel -------------------------------------------------------------


class FakeKernel:
    """Runs cells and inspection snippets in one namespace, in this process."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.ns["display"] = lambda *objs, **kw: None  # IPython's display builtin
        self.cells = 0
        self.inspections = 0

    def execute(self, code: str) -> list[dict]:
        """Run a cell; return its stdout as nbformat stream outputs."""
        self.cells += 1
        filename = f"<fake-cell-{self.cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, filename, "exec"), self.ns)
        text = out.getvalue()
        return [{"output_type": "stream", "name": "stdout", "text": text}] if text else []

    def inspect(self, code: str) -> Any:
        self.inspections += 1
        exec(compile(code, "<inspection>", "exec"), self.ns)
        return json.loads(json.dumps(self.ns.pop("__workbook_result__")))


def save_tiny(folder: Path, model, tokenizer) -> ModelSource:
    """Write the tiny model where the setup cell's ``from_pretrained`` can read it."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return ModelSource(name="tiny", path=str(folder), tokenizer_kwargs={})


def solution(step_id: str) -> str:
    return content.step(step_id).solution


def run_solutions(kernel: FakeKernel, upto: int) -> list[dict]:
    """Run the reference solutions of steps 1..upto; return the last cell's outputs."""
    outputs: list[dict] = []
    for number in range(1, upto + 1):
        outputs = kernel.execute(solution(f"step{number}"))
    return outputs


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = make_tiny_pair(seed=3)
    return model, tokenizer


@pytest.fixture(scope="module")
def lm(tiny):
    model, tokenizer = tiny
    return LanguageModel("tiny", model, tokenizer)


@pytest.fixture(scope="module")
def tiny_source(tiny, tmp_path_factory):
    model, tokenizer = tiny
    return save_tiny(tmp_path_factory.mktemp("tiny-model"), model, tokenizer)


@pytest.fixture
def kernel(tiny_source, monkeypatch):
    """A fresh fake kernel after the real setup cell (loading the tiny model from disk)."""
    monkeypatch.setattr(lm_engine, "resolve", lambda name, **kw: tiny_source)
    k = FakeKernel()
    k.execute(content.setup_code("tiny"))
    return k


def check(kernel: FakeKernel, lm, step: int, code: str | None = None) -> CheckResult:
    """Run steps 1..step-1 from the solutions, then ``code`` (default: the solution)."""
    run_solutions(kernel, step - 1)
    outputs = kernel.execute(code if code is not None else solution(f"step{step}"))
    return run_check(f"step{step}", kernel, lm, outputs=outputs)


def failed_with(result: CheckResult, *fragments: str) -> None:
    assert not result.passed, result.message
    text = " ".join(result.details)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in: {text}"
    assert result.message.startswith("Not yet:")


# --- the correct solution --------------------------------------------------------------


def test_setup_cell_prints_vocabulary_and_parameters_with_thousands_separators(
    tiny_source, lm, monkeypatch
):
    monkeypatch.setattr(lm_engine, "resolve", lambda name, **kw: tiny_source)
    text = printed_text(FakeKernel().execute(content.setup_code("tiny")))
    assert f"{len(lm.tokenizer):,} strings" in text
    assert f"{lm.num_parameters:,} parameters" in text and "," in f"{lm.num_parameters:,}"


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6])
def test_reference_solution_passes_its_check(kernel, lm, step):
    result = check(kernel, lm, step)
    assert result.passed, result.message
    assert result.details == ()
    assert result.message.startswith("Check passed.")


def test_checks_use_the_students_own_phrase(kernel, lm):
    code = solution("step1").replace(content.START_PHRASE, "the cat sat on the mat")
    assert check(kernel, lm, 1, code).passed
    for step in (2, 3, 4, 5):
        outputs = kernel.execute(solution(f"step{step}"))
        result = run_check(f"step{step}", kernel, lm, outputs=outputs)
        assert result.passed, (step, result.message)


def test_inspection_leaves_no_names_behind(kernel, lm):
    run_solutions(kernel, 6)
    before = dict(kernel.ns)
    for step in range(1, 7):
        run_check(f"step{step}", kernel, lm)
    assert kernel.ns.keys() == before.keys()
    assert all(kernel.ns[name] is before[name] for name in before)


def test_checks_survive_students_shadowing_builtins(kernel, lm):
    run_solutions(kernel, 6)
    kernel.execute("sum = 0\nlist = 'oops'\nlen = None\ntype = 3\nisinstance = print\nstr = 1")
    for step in range(1, 7):
        result = run_check(f"step{step}", kernel, lm)
        assert result.passed, (step, result.message)


# --- step 1 ----------------------------------------------------------------------------


def test_step1_input_ids_as_a_list_is_not_a_tensor(kernel, lm):
    code = 'phrase = "this weekend i plan to"\nbatch = tokenizer(phrase)\ninput_ids = batch["input_ids"]'
    failed_with(check(kernel, lm, 1, code), "`input_ids` is a list, not a PyTorch tensor")


def test_step1_missing_dimension_reports_the_shape(kernel, lm):
    code = solution("step1") + "input_ids = input_ids[0]\n"
    n = lm.encode(content.START_PHRASE).shape[1]
    failed_with(check(kernel, lm, 1, code), f"has shape [{n}]; expected [1, {n}]")


def test_step1_float_ids_report_the_dtype(kernel, lm):
    code = solution("step1") + "input_ids = input_ids.float()\n"
    failed_with(check(kernel, lm, 1, code), "dtype torch.float32", "integers")


def test_step1_ids_of_another_phrase_name_that_phrase(kernel, lm):
    code = (
        solution("step1")
        + 'input_ids = tokenizer("this weekend i go to", return_tensors="pt")["input_ids"]\n'
    )
    result = check(kernel, lm, 1, code)
    failed_with(result, "are the tokens of 'this weekend i go to', not of `phrase`")
    # The ids the step asks for are never shown.
    assert str(lm.encode(content.START_PHRASE)[0].tolist()[3]) not in result.message


def test_step1_undefined_names_are_reported_not_raised(kernel, lm):
    failed_with(check(kernel, lm, 1, 'phrase = "hello"'), "`batch` is not defined yet")


def test_step1_phrase_of_the_wrong_type(kernel, lm):
    result = check(kernel, lm, 1, solution("step1") + "phrase = 42\n")
    failed_with(result, "`phrase` is an int; it should be a string")


# --- step 2 ----------------------------------------------------------------------------


def test_step2_model_run_on_another_phrase_reports_the_shape(kernel, lm):
    code = (
        "with torch.no_grad():\n"
        '    model_output = model(tokenizer("hello world", return_tensors="pt")["input_ids"])\n'
        "print(list(model_output.logits.shape))\n"
    )
    n, v = lm.logits(content.START_PHRASE).shape[1:]
    failed_with(check(kernel, lm, 2, code), f"has shape [1, 2, {v}]; expected [1, {n}, {v}]")


def test_step2_changed_logits_name_the_first_differing_entry(kernel, lm):
    code = solution("step2") + "model_output.logits[0, 2, 7] += 1.0\n"
    failed_with(check(kernel, lm, 2, code), "in 1 of", "the first is at [0, 2, 7]")


def test_step2_output_must_show_the_shape_as_a_list(kernel, lm):
    code = "with torch.no_grad():\n    model_output = model(input_ids)\nprint('done')\n"
    failed_with(check(kernel, lm, 2, code), "does not show the shape")


def test_step2_model_output_without_logits(kernel, lm):
    failed_with(check(kernel, lm, 2, "model_output = 5"), "`model_output` is an int without")


def test_step2_large_tensors_are_compared_by_their_row_summaries(kernel, lm, monkeypatch):
    monkeypatch.setattr(inspection, "_FULL_LIMIT", 37)
    assert check(kernel, lm, 2).passed
    digest = kernel.inspect(checks.inspection_snippet("step2"))
    assert "data" not in digest["values"]["model_output.logits"]
    kernel.execute("model_output.logits[0, 2, 7] += 1.0")
    result = run_check("step2", kernel, lm)
    failed_with(result, "in 1 of", "rows along the last dimension; the first is [0, 2, :]")


# --- step 3 ----------------------------------------------------------------------------


def test_step3_index_minus_two_names_the_position_taken(kernel, lm):
    n = lm.encode(content.START_PHRASE).shape[1]
    code = "last_token_logits = model_output.logits[0, -2]\n"
    failed_with(check(kernel, lm, 3, code), f"token position {n - 2} of {n}", f"position {n - 1}")


def test_step3_keeping_the_batch_dimension_is_a_shape_problem(kernel, lm):
    code = "last_token_logits = model_output.logits[:, -1]\n"
    failed_with(check(kernel, lm, 3, code), f"has shape [1, {lm.vocab_size}]", "batch dimension")


def test_step3_whole_sequence_is_a_shape_problem(kernel, lm):
    n = lm.encode(content.START_PHRASE).shape[1]
    code = "last_token_logits = model_output.logits[0]\n"
    failed_with(check(kernel, lm, 3, code), f"[{n}, {lm.vocab_size}]; expected [{lm.vocab_size}]")


# --- step 4 ----------------------------------------------------------------------------


def test_step4_without_softmax_says_it_still_holds_logits(kernel, lm):
    code = solution("step4").replace("last_token_logits.softmax(dim=-1)", "last_token_logits")
    failed_with(check(kernel, lm, 4, code), "still holds the logits", "softmax")


def test_step4_softmax_over_the_wrong_dimension_does_not_sum_to_one(kernel, lm):
    code = solution("step4").replace(
        "last_token_logits.softmax(dim=-1)", "model_output.logits.softmax(dim=1)[0, -1]"
    )
    failed_with(check(kernel, lm, 4, code), "sums to", "softmax over the last")


def test_step4_argmax_over_the_wrong_dimension_is_not_a_single_id(kernel, lm):
    code = solution("step4").replace(
        "last_token_probabilities.argmax()", "model_output.logits[0].argmax(dim=0)"
    )
    code = code.replace("most_likely_token_id.item()", "0")
    result = check(kernel, lm, 4, code.split("most_likely_token = ")[0])
    failed_with(result, "`most_likely_token_id` has shape [", "expected a single token id")


def test_step4_flat_argmax_of_all_logits_is_not_a_token_id(kernel, lm):
    code = solution("step4").replace(
        "last_token_probabilities.argmax()", "model_output.logits.argmax()"
    )
    flat = int(lm.logits(content.START_PHRASE).argmax())
    if flat < lm.vocab_size:  # the max happens to be in the first row: not this mistake
        pytest.skip("the global argmax of the tiny model lies at position 0")
    result = check(kernel, lm, 4, code.split("most_likely_token = ")[0])
    failed_with(result, f"is {flat}, which is not a token id")


def test_step4_wrong_printed_probability_is_reported(kernel, lm):
    code = solution("step4").replace(
        "most_likely_token_probability.item():.2%", "most_likely_token_probability.item() / 2:.2%"
    )
    want = f"{float(lm.top_k(content.START_PHRASE, 1)['probabilities'][0]):.2%}"
    result = check(kernel, lm, 4, code)
    failed_with(result, "printed percentage is not the most likely token's probability")
    assert want not in result.message


def test_step4_printing_a_fraction_instead_of_a_percentage_is_reported(kernel, lm):
    code = solution("step4").replace(":.2%", ":.4f")
    failed_with(check(kernel, lm, 4, code), "as a percentage with two decimals")


def test_step4_without_printed_output_checks_the_variables_only(kernel, lm):
    run_solutions(kernel, 3)
    kernel.execute(solution("step4"))
    assert run_check("step4", kernel, lm, outputs=None).passed


def test_step4_token_not_decoded(kernel, lm):
    code = solution("step4").replace(
        "tokenizer.decode(most_likely_token_id)", "str(most_likely_token_id)"
    )
    failed_with(check(kernel, lm, 4, code), "`most_likely_token` is", "decoded with the tokenizer")


# --- step 5 ----------------------------------------------------------------------------


def test_step5_wrong_k_reports_the_number_of_entries(kernel, lm):
    code = solution("step5").replace("topk(10)", "topk(5)")
    failed_with(check(kernel, lm, 5, code), "has shape [5]; expected [10]")


def test_step5_topk_of_the_logits_passes_with_a_note(kernel, lm):
    code = solution("step5").replace(
        "last_token_probabilities.topk(10)", "last_token_logits.topk(10)"
    )
    result = check(kernel, lm, 5, code)
    assert result.passed, result.message
    assert "Note: you took topk of the logits" in result.message


def test_step5_table_with_percentages_names_the_row(kernel, lm):
    code = solution("step5").replace(
        '"probabilities": probabilities_of_most_likely_tokens',
        '"probabilities": probabilities_of_most_likely_tokens * 100',
    )
    failed_with(check(kernel, lm, 5, code), "'probabilities' are percentages", "between 0 and 1")


def test_step5_table_with_token_ids_instead_of_strings(kernel, lm):
    code = solution("step5").replace(
        "[tokenizer.decode(token_id) for token_id in most_likely_tokens.indices]",
        "[int(token_id) for token_id in most_likely_tokens.indices]",
    )
    failed_with(check(kernel, lm, 5, code), "'tokens' holds", "decoded string")


def test_step5_table_with_wrong_column_names(kernel, lm):
    code = solution("step5").replace('{"tokens":', '{"token":')
    failed_with(check(kernel, lm, 5, code), "needs the columns 'tokens' and 'probabilities'")


# --- step 6 ----------------------------------------------------------------------------

_GOOD_FUNCTION = solution("step6").split("\n\ncheck_global_vars")[0]


def check6(kernel, lm, function_code: str) -> CheckResult:
    run_solutions(kernel, 5)
    kernel.execute(function_code)
    return run_check("step6", kernel, lm)


def test_step6_function_reading_a_global_is_caught(kernel, lm):
    code = _GOOD_FUNCTION.replace(
        'input_ids = tokenizer(phrase, return_tensors="pt")["input_ids"]', "pass"
    )
    result = check6(kernel, lm, code)
    failed_with(result, "reads global variables it should not: input_ids")
    # It also returns the start phrase's table for every unseen phrase.
    assert any("predict_next_tokens('The cat sat on the', 1)" in d for d in result.details)


def test_step6_global_read_inside_a_comprehension_is_caught(kernel, lm):
    code = _GOOD_FUNCTION.replace(
        "[tokenizer.decode(token_id) for token_id in top.indices]",
        "[tokenizer.decode(token_id) for token_id in top.indices if most_likely_token_id is not None]",
    )
    failed_with(check6(kernel, lm, code), "global variables it should not: most_likely_token_id")


def test_step6_checks_read_the_starter_codes_comments_once(kernel, lm, monkeypatch):
    run_solutions(kernel, 6)
    digest = kernel.inspect(checks.inspection_snippet("step6"))
    reference = checks.reference_for("step6", lm, digest)
    looked_up: list[str] = []
    step = content.step

    def counted(step_id, *args, **kwargs):
        looked_up.append(step_id)
        return step(step_id, *args, **kwargs)

    monkeypatch.setattr(content, "step", counted)
    getattr(step_messages_5_6.starter_code_comments, "cache_clear", lambda: None)()
    for _ in range(3):
        assert checks.compare(digest, reference).passed
    assert looked_up.count("step6") <= 1


def test_step6_function_without_comments_is_caught(kernel, lm):
    code = "\n".join(
        line for line in _GOOD_FUNCTION.splitlines() if not line.strip().startswith("#")
    )
    failed_with(check6(kernel, lm, code), "has 0 comments", f"at least {checks.MIN_COMMENTS}")


def test_step6_function_that_prints_is_caught(kernel, lm):
    code = _GOOD_FUNCTION.replace(
        "    return pd.DataFrame", "    print(tokens)\n    return pd.DataFrame"
    )
    result = check6(kernel, lm, code)
    failed_with(result, "printed", "print nothing")
    # Said once, not once per unseen phrase; the tables themselves are right.
    assert len(result.details) == 1


def test_step6_function_that_ignores_k_is_caught(kernel, lm):
    code = _GOOD_FUNCTION.replace("probabilities.topk(k)", "probabilities.topk(10)")
    failed_with(
        check6(kernel, lm, code),
        "returns 10 rows whatever `k` is",
        "predict_next_tokens('The cat sat on the', 1)",
        "has 10 rows; expected 1",
    )


def test_step6_function_that_ignores_its_phrase_is_named(kernel, lm):
    code = _GOOD_FUNCTION.replace(
        "def predict_next_tokens(phrase, k):",
        "def predict_next_tokens(phrase, k):\n    text = phrase",
    ).replace(
        'tokenizer(phrase, return_tensors="pt")', 'tokenizer("hello world", return_tensors="pt")'
    )
    failed_with(check6(kernel, lm, code), "same most likely token for every phrase")


def test_step6_function_using_index_minus_two_fails_on_unseen_phrases(kernel, lm):
    code = _GOOD_FUNCTION.replace("logits[0, -1]", "logits[0, -2]")
    failed_with(check6(kernel, lm, code), "of 'tokens' is")


def test_step6_function_that_raises_reports_the_error(kernel, lm):
    code = (
        "def predict_next_tokens(phrase, k):\n    # one\n    # two\n    # three\n    return 1 / 0\n"
    )
    failed_with(check6(kernel, lm, code), "raised ZeroDivisionError")


def test_step6_starter_code_fails(kernel, lm):
    run_solutions(kernel, 5)
    kernel.execute(content.step("step6").starter_code.split("\n\ncheck_global_vars")[0])
    failed_with(run_check("step6", kernel, lm), "is a NoneType, not a pandas DataFrame")


def test_step6_missing_or_not_a_function(kernel, lm):
    run_solutions(kernel, 5)
    failed_with(run_check("step6", kernel, lm), "`predict_next_tokens` is not defined yet")
    kernel.execute("predict_next_tokens = 3")
    failed_with(run_check("step6", kernel, lm), "define it as a function")


def test_step6_tests_unseen_phrases_with_k_1_and_a_long_phrase():
    phrases = [p for p, _ in checks.UNSEEN_CALLS]
    ks = [k for _, k in checks.UNSEEN_CALLS]
    assert 1 in ks
    assert not set(ks) & {5, 10}
    assert not set(phrases) & {*content.STEP6_EXAMPLES, content.START_PHRASE}
    assert max(len(p.split()) for p in phrases) >= 40


# --- robustness and plumbing ------------------------------------------------------------


def test_objects_that_raise_on_access_are_reported(kernel, lm):
    code = (
        "class Weird:\n"
        "    @property\n"
        "    def logits(self):\n"
        "        raise RuntimeError('boom')\n"
        "model_output = Weird()\n"
    )
    failed_with(check(kernel, lm, 2, code), "Reading `model_output` failed with RuntimeError: boom")


def test_unknown_step_raises_check_error(kernel, lm):
    with pytest.raises(CheckError):
        run_check("setup", kernel, lm)
    with pytest.raises(CheckError):
        checks.inspection_snippet("step9")


def test_unusable_digest_fails_with_a_message(lm):
    class Broken:
        def inspect(self, code):
            return None

    result = run_check("step1", Broken(), lm)
    assert not result.passed and "run the cell again" in result.message


def test_malformed_digest_fails_with_a_message_instead_of_raising(lm):
    class Tampered:
        def inspect(self, code):
            return {
                "step": "step1",
                "values": {
                    "phrase": {"kind": "scalar", "value": "hello"},
                    "input_ids": {"kind": "tensor"},
                },
            }

    result = run_check("step1", Tampered(), lm)
    assert not result.passed and "restart the kernel" in result.message


def test_engine_answers_are_reused_across_steps_on_the_same_phrase(kernel, lm):
    calls: list[str] = []

    class Counting:
        """The same model, counting the engine calls the checks make."""

        def __getattr__(self, name):
            attr = getattr(lm, name)
            if not inspect.ismethod(attr):
                return attr

            def counted(*args, **kwargs):
                calls.append(name)
                return attr(*args, **kwargs)

            return counted

    counting = Counting()
    run_solutions(kernel, 6)
    for _ in range(2):
        for step in range(2, 7):
            assert run_check(f"step{step}", kernel, counting).passed
    assert calls.count("logits") == 1
    # Steps 4 and 5 read their table from the cached logits; only step 6's phrases run.
    assert calls.count("top_k") == len(checks.UNSEEN_CALLS)


def test_checks_call_the_tokenizer_only_under_the_models_lock(kernel, tiny):
    model, tokenizer = tiny
    guarded = LanguageModel("tiny", model, tokenizer)
    unlocked: list[str] = []

    class Guarded:
        """The same tokenizer, noting every call made without the model's tokenizer lock."""

        def __call__(self, *args, **kwargs):
            return self.__getattr__("__call__")(*args, **kwargs)

        def __getattr__(self, name):
            attr = getattr(tokenizer, name)
            if not callable(attr):
                return attr

            def noted(*args, **kwargs):
                if not guarded.tokenizer_lock.locked():
                    unlocked.append(name)
                return attr(*args, **kwargs)

            return noted

    guarded.tokenizer = Guarded()
    run_solutions(kernel, 6)
    for step in range(1, 7):
        assert run_check(f"step{step}", kernel, guarded).passed
    assert unlocked == []


def test_compare_is_pure_and_matches_run_check(kernel, lm):
    run_solutions(kernel, 3)
    digest = kernel.inspect(checks.inspection_snippet("step3"))
    reference = checks.reference_for("step3", lm, digest)
    assert checks.compare(digest, reference).passed
    digest["values"]["last_token_logits"]["shape"] = [3]
    assert not checks.compare(digest, reference).passed


def test_message_lists_at_most_three_problems(kernel, lm):
    run_solutions(kernel, 3)
    result = run_check("step4", kernel, lm)
    assert len(result.details) == 4
    assert result.message.count("\n- ") == 4  # three problems and the "... more" line
    assert "1 more" in result.message


def test_printed_text_joins_stdout_streams_only():
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "a\n"},
        {"output_type": "stream", "name": "stderr", "text": "warning\n"},
        {"output_type": "stream", "name": "stdout", "text": ["b", "\n"]},
        {"output_type": "execute_result", "data": {"text/plain": "x"}},
    ]
    assert printed_text(outputs) == "a\nb\n"
    assert printed_text(None) is None


def test_tensors_travel_as_little_endian_float32(kernel, lm):
    run_solutions(kernel, 3)
    digest = kernel.inspect(checks.inspection_snippet("step3"))
    desc = digest["values"]["last_token_logits"]
    assert desc["encoding"] == "float32"
    values = tensor_values(desc)
    assert torch.equal(values, kernel.ns["last_token_logits"].float())


def test_snippet_is_valid_python_for_every_step():
    for step_id in checks.CHECKS:
        compile(checks.inspection_snippet(step_id), step_id, "exec")
    assert textwrap.dedent(checks.inspection_snippet("step1")).startswith("def __workbook")


# --- issue 14: right solutions pass, causes are named, answers are not handed over ----------


def _answer_values(lm) -> list[str]:
    """What step 4 asks the student to find, as it could appear in a message."""
    top = lm.top_k(content.START_PHRASE, 1)
    token, token_id = str(top["tokens"][0]), int(top["token_ids"][0])
    return [repr(token), f"id {token_id}", f"{float(top['probabilities'][0]):.2%}"]


def test_setup_helper_counts_only_real_reads_of_globals(kernel):
    kernel.execute(solution("step1"))  # leaves a global `input_ids`
    kernel.execute(
        "def by_attribute(phrase, k):\n"
        "    return tokenizer(phrase, return_tensors='pt').input_ids\n"
        "def by_global(phrase, k):\n"
        "    return [input_ids for _ in range(k)]\n"
    )
    kernel.execute(
        "check_global_vars(by_attribute, allowed_globals=['torch', 'tokenizer', 'pd', 'model'])"
    )
    with pytest.raises(AssertionError, match="uses global variables it should not: input_ids"):
        kernel.execute(
            "check_global_vars(by_global, allowed_globals=['torch', 'tokenizer', 'pd', 'model'])"
        )


def test_step6_attribute_named_like_a_global_passes(kernel, lm):
    code = _GOOD_FUNCTION.replace(
        'tokenizer(phrase, return_tensors="pt")["input_ids"]',
        'tokenizer(phrase, return_tensors="pt").input_ids',
    )
    result = check6(kernel, lm, code)
    assert result.passed, result.message


def test_step2_without_no_grad_fails_and_says_why(kernel, lm):
    code = "model_output = model(input_ids)\nprint(list(model_output.logits.shape))\n"
    failed_with(check(kernel, lm, 2, code), "requires_grad=True", "torch.no_grad()", "memory")


def test_step2_phrase_changed_without_running_step1_again(kernel, lm):
    run_solutions(kernel, 1)
    kernel.execute('phrase = "the cat sat on the mat"')
    result = check(kernel, lm, 2)  # reruns step 1's solution first: rebind afterwards
    assert result.passed
    kernel.execute('phrase = "the cat sat on the mat"')
    kernel.execute(solution("step2"))
    failed_with(
        run_check("step2", kernel, lm),
        "are the tokens of 'this weekend i plan to'",
        "Run all above",
    )


def test_step3_after_a_new_phrase_without_step2_names_the_stale_model_output(kernel, lm):
    run_solutions(kernel, 2)
    kernel.execute(solution("step1").replace(content.START_PHRASE, "the cat sat on the mat"))
    kernel.execute(solution("step3"))
    failed_with(
        run_check("step3", kernel, lm), "`model_output` (step 2) does not belong", "Run all above"
    )


def test_step2_attention_mask_given_as_ids_is_named(kernel, lm):
    code = solution("step2").replace("model(input_ids)", 'model(batch["attention_mask"])')
    failed_with(check(kernel, lm, 2, code), "attention mask instead of the token ids")


@pytest.mark.parametrize(
    ("replacement", "fragments"),
    [
        ('batch["attention_mask"]', ("only 1s", "attention mask")),
        ("batch", ("whole BatchEncoding", "Take only its 'input_ids' entry")),
        ("batch.encodings[0]", ("is an Encoding", "'input_ids' entry")),
        ('tokenizer(phrase, return_tensors="np")["input_ids"]', ("is an ndarray",)),
    ],
)
def test_step1_wrong_kinds_of_input_ids_say_what_to_do(kernel, lm, replacement, fragments):
    code = solution("step1").replace('input_ids = batch["input_ids"]', f"input_ids = {replacement}")
    failed_with(check(kernel, lm, 1, code), *fragments)


def test_step3_softmax_already_applied_is_named(kernel, lm):
    code = solution("step3").replace("[0, -1]", "[0, -1].softmax(dim=-1)")
    failed_with(check(kernel, lm, 3, code), "already holds probabilities", "step 4")


def test_step4_softmax_twice_names_step3(kernel, lm):
    run_solutions(kernel, 2)
    kernel.execute(solution("step3").replace("[0, -1]", "[0, -1].softmax(dim=-1)"))
    outputs = kernel.execute(solution("step4"))
    failed_with(run_check("step4", kernel, lm, outputs=outputs), "Softmax was applied twice")


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("last_token_probabilities.argmax()", "last_token_probabilities.argmin()", "*least*"),
        (
            "last_token_probabilities[most_likely_token_id]",
            "last_token_probabilities[most_likely_token_id] * 100",
            "is a percentage",
        ),
        (
            "last_token_probabilities[most_likely_token_id]",
            "last_token_logits[most_likely_token_id]",
            "is a logit",
        ),
        ("tokenizer.decode(most_likely_token_id)", "str(most_likely_token_id.item())", "as text"),
        (
            "most_likely_token_probability.item():.2%",
            "most_likely_token_probability.item() * 100:.2%",
            "100 times too large",
        ),
        ("most_likely_token_id.item()}", "0}", "does not show the most likely token's id"),
    ],
)
def test_step4_says_what_kind_of_thing_is_wrong_never_the_answer(kernel, lm, old, new, fragment):
    code = solution("step4")
    assert old in code
    result = check(kernel, lm, 4, code.replace(old, new))
    failed_with(result, fragment)
    for answer in _answer_values(lm):
        assert answer not in result.message, (answer, result.message)


def test_step5_wrong_table_tokens_do_not_show_the_expected_ones(kernel, lm):
    code = solution("step5").replace(
        "for token_id in most_likely_tokens.indices]",
        "for token_id in most_likely_tokens.indices.flip(0)]",
    )
    result = check(kernel, lm, 5, code)
    failed_with(result, "right ones in another order")
    assert _answer_values(lm)[0] not in result.message


def test_every_step_passes_and_wrong_ones_fail_with_row_summaries(kernel, lm, monkeypatch):
    """With every tensor summarised (as the real model's are), the checks behave the same."""
    monkeypatch.setattr(inspection, "_FULL_LIMIT", 8)
    for step in range(1, 7):
        result = check(kernel, lm, step)
        assert result.passed, (step, result.message)
    digest = kernel.inspect(checks.inspection_snippet("step4"))
    assert "summary" in digest["values"]["last_token_probabilities"]
    n = lm.encode(content.START_PHRASE).shape[1]
    kernel.execute("last_token_logits = model_output.logits[0, -2]")
    failed_with(run_check("step3", kernel, lm), f"token position {n - 2} of {n}")
    kernel.execute("last_token_logits = model_output.logits[0, -1].softmax(dim=-1)")
    failed_with(run_check("step3", kernel, lm), "already holds probabilities")


def test_summaries_are_the_same_in_the_kernel_and_on_the_server(kernel, lm, monkeypatch):
    monkeypatch.setattr(inspection, "_FULL_LIMIT", 8)
    run_solutions(kernel, 2)
    digest = kernel.inspect(checks.inspection_snippet("step2"))
    mine = tensors.Rows.from_summary(digest["values"]["model_output.logits"]["summary"])
    reference = tensors.Rows.of(lm.logits(content.START_PHRASE))
    assert mine.mismatched_rows(reference, tensors.LOGITS_TOL) == []
    assert mine.sketch.shape == (lm.encode(content.START_PHRASE).shape[1], tensors.SKETCH_SIZE)


def test_checker_code_is_compiled_once_per_kernel(kernel, lm):
    import sys

    run_solutions(kernel, 1)
    run_check("step1", kernel, lm)
    checker = sys.modules["__workbook_check__"]
    run_check("step1", kernel, lm)
    assert sys.modules["__workbook_check__"] is checker


@pytest.mark.parametrize(
    ("word", "expected"),
    [("int", "an int"), ("ndarray", "an ndarray"), ("Encoding", "an Encoding"), ("list", "a list")],
)
def test_types_get_the_right_article(word, expected):
    assert a(word) == expected


def test_very_wide_rows_are_summarised_on_strided_columns():
    wide = torch.linspace(-3, 3, 300_000).reshape(1, -1)  # wider than the sign matrix's cap
    rows = tensors.Rows.of(wide)
    assert rows.sketch.shape == (1, tensors.SKETCH_SIZE)
    assert rows.matches(0, tensors.Rows.of(wide.clone()), 0, tensors.LOGITS_TOL)
    assert not rows.matches(0, tensors.Rows.of(wide + 0.05), 0, tensors.LOGITS_TOL)


def test_row_summaries_survive_another_thread_clearing_the_sign_cache(monkeypatch):
    class ClearedByAnotherThread(dict):
        """A cache that another check's thread empties right after each fill."""

        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            self.clear()

    monkeypatch.setattr(check_kernel, "_K_CACHE", ClearedByAnotherThread())
    rows = torch.linspace(-3, 3, 40).reshape(2, 20)
    assert tensors.Rows.of(rows).matches(0, tensors.Rows.of(rows.clone()), 0, tensors.LOGITS_TOL)
