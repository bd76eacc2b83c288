"""The exercise as data: steps, setup cell and analysis questions are complete and consistent."""

from __future__ import annotations

import ast
import re
import sys

import pytest

from workbook.errors import WorkbookError
from workbook.exercise import checks, content

GRADED = [s for s in content.steps() if not s.given]
# The course's variable names (TAs read exported notebooks with these in mind).
COURSE_NAMES = {
    "phrase",
    "batch",
    "input_ids",
    "model_output",
    "last_token_logits",
    "last_token_probabilities",
    "most_likely_token_id",
    "most_likely_tokens",
    "predict_next_tokens",
}


def assigned_names(code: str) -> set[str]:
    """Names a cell binds at top level (assignments, defs, with-targets, for-targets)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def test_notebook_is_a_given_setup_cell_then_steps_one_to_six():
    steps = content.steps()
    assert [s.id for s in steps] == content.step_ids()
    assert [s.number for s in steps] == list(range(7))
    assert steps[0].given and steps[0].check is None
    assert all(not s.given for s in steps[1:])
    assert len(set(content.step_ids())) == len(steps)


def test_every_graded_step_has_a_check_that_exists():
    for step in GRADED:
        assert step.check is not None, step.id
        assert step.check in checks.CHECKS, step.id
        compile(checks.inspection_snippet(step.check), step.id, "exec")


def test_starter_code_has_blanks_and_solutions_have_none():
    for step in GRADED:
        assert "___" in step.starter_code or "..." in step.starter_code, step.id
        assert "___" not in step.solution, step.id
        assert step.starter_code != step.solution
        # Blanks are valid Python, so a cell with blanks fails with a NameError, not a
        # SyntaxError; solutions must compile too.
        compile(step.starter_code, step.id, "exec")
        compile(step.solution, step.id, "exec")


def test_each_solution_defines_the_names_its_step_declares():
    for step in content.steps():
        missing = set(step.defines) - assigned_names(step.solution)
        assert not missing, f"{step.id} does not define {missing}"


def test_the_course_variable_names_are_kept():
    declared = {name for step in GRADED for name in step.defines}
    assert declared >= COURSE_NAMES


def test_setup_cell_loads_the_active_model_with_plain_transformers():
    code = content.setup_code("some/model")
    assert "MODEL_NAME = 'some/model'" in code
    assert "lm_engine.resolve(MODEL_NAME)" in code
    assert "AutoTokenizer.from_pretrained(src.path, **src.tokenizer_kwargs)" in code
    assert "AutoModelForCausalLM.from_pretrained(src.path)" in code
    assert "tokenizer.pad_token = tokenizer.eos_token" in code
    # Its comment tells how to run the notebook elsewhere.
    assert "distilgpt2" in code and "add_prefix_space=True" in code
    assert ":," in code  # thousands separators for vocabulary size and parameter count
    assert {"torch", "pd", "tokenizer", "model", "check_global_vars"} <= assigned_names(code)
    assert content.steps("some/model")[0].starter_code == code
    assert content.step("setup").starter_code == content.setup_code(content.DEFAULT_MODEL)


def _check_global_vars():
    """The setup cell's helper, defined on its own (without loading a model)."""
    tree = ast.parse(content.setup_code())
    helper = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check_global_vars"
    )
    # With the cell's standard-library imports, which the helper may use.
    imports = [
        n
        for n in tree.body
        if isinstance(n, ast.Import) and all(a.name in sys.stdlib_module_names for a in n.names)
    ]
    ns: dict = {}
    exec("\n".join(ast.unparse(n) for n in [*imports, helper]), ns)
    return ns


def test_check_global_vars_names_every_disallowed_global():
    ns = _check_global_vars()
    exec(
        "torch = tokenizer = input_ids = phrase = 1\n"
        "def good(p):\n    return torch, tokenizer, p\n"
        "def bad(p):\n    return torch, input_ids, phrase\n",
        ns,
    )
    ns["check_global_vars"](ns["good"], allowed_globals=list(content.ALLOWED_GLOBALS))
    with pytest.raises(AssertionError, match="input_ids, phrase"):
        ns["check_global_vars"](ns["bad"], allowed_globals=list(content.ALLOWED_GLOBALS))


def test_check_global_vars_ignores_attributes_named_like_globals():
    ns = _check_global_vars()
    exec(
        "input_ids = phrase = 1\n"
        "def by_attribute(p):\n    return tokenizer(p).input_ids, [t.phrase for t in p]\n"
        "def in_a_comprehension(p):\n    return [input_ids for _ in p]\n",
        ns,
    )
    allowed = list(content.ALLOWED_GLOBALS)
    ns["check_global_vars"](ns["by_attribute"], allowed_globals=allowed)
    with pytest.raises(AssertionError, match="it should not: input_ids"):
        ns["check_global_vars"](ns["in_a_comprehension"], allowed_globals=allowed)


def test_step6_uses_the_spec_allowed_globals_and_example_phrases():
    step6 = content.step("step6")
    assert content.ALLOWED_GLOBALS == ("torch", "tokenizer", "pd", "model")
    call = (
        f"check_global_vars(predict_next_tokens, allowed_globals={list(content.ALLOWED_GLOBALS)})"
    )
    assert call in step6.starter_code and call in step6.solution
    for phrase in content.STEP6_EXAMPLES:
        assert repr(phrase) in step6.starter_code
    assert set(content.STEP6_EXAMPLES) == {
        "This weekend I plan to",
        "To be or not to",
        "For God so loved the",
    }
    # The starter's loop must not overwrite the student's `phrase`.
    for code in (step6.starter_code, step6.solution):
        outside = [n for n in ast.parse(code).body if not isinstance(n, ast.FunctionDef)]
        assert "phrase" not in assigned_names("\n".join(ast.unparse(n) for n in outside))
    assert not re.search(r"for phrase in", step6.starter_code + step6.solution)


def test_step1_offers_the_start_and_the_famous_alternative_phrase():
    step1 = content.step("step1")
    assert f'phrase = "{content.START_PHRASE}"' in step1.starter_code
    assert content.ALTERNATIVE_PHRASE in step1.starter_code
    assert content.ALTERNATIVE_PHRASE.startswith("In a shocking finding, scientists")
    assert content.START_PHRASE in content.INTRODUCTION


def test_instructions_explain_what_the_spec_asks_for():
    text = {s.id: s.instructions for s in content.steps()}
    assert "no_grad" in text["step2"] and "gradients" in text["step2"]
    assert "colour scale" in text["step5"] and "gradient descent" in text["step5"]
    assert "comment" in text["step6"] and "check_global_vars" in text["step6"]
    assert "softmax" in text["step4"].lower() and "argmax" in text["step4"]
    assert "topk" in text["step5"]


def test_solutions_never_appear_in_what_students_see():
    shown = content.INTRODUCTION + "".join(s.instructions + s.starter_code for s in GRADED)
    for key_line in ("model_output.logits[0, -1]", "softmax(dim=-1)", "topk(10)", "topk(k)"):
        assert key_line not in shown


def test_questions_have_prompt_hint_and_rubric_without_giving_the_answer():
    qs = content.questions()
    assert [q.id for q in qs] == content.question_ids() == ["q1", "q2", "q3"]
    for q in qs:
        assert q.prompt.strip() and q.hint.strip() and len(q.rubric) >= 3
        for point in q.rubric:
            assert point not in q.hint and point not in q.prompt
    q1, q2, q3 = qs
    assert "model_output.logits" in q1.prompt
    assert "-2" in q2.prompt and "argmax" in q2.prompt
    assert "No code needed" in q3.prompt
    # The hints point the way but name none of the answers.
    assert "vocabulary" not in q1.hint.lower()
    for answer in ("beam", "nucleus", "top-p", "top-k", "temperature", "sampling"):
        assert answer not in q3.hint.lower()
    # The rubric carries the spec's points.
    assert "tokens (not words)" in " ".join(q1.rubric)
    assert all(w in " ".join(q3.rubric) for w in ("greedy", "sampling", "beam", "end-of-sequence"))


def test_unknown_ids_raise_a_workbook_error_naming_the_valid_ones():
    with pytest.raises(content.UnknownExercise, match="step1"):
        content.step("step7")
    with pytest.raises(WorkbookError, match="q1"):
        content.question("q9")
    assert content.question("q2").id == "q2"
