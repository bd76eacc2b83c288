"""The pre-submission checklist flags each TA complaint and passes a complete submission."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from export_data import (
    REFLECTION_1,
    REFLECTION_2,
    complete_log,
    complete_submission,
    entry,
)

from db import ProjectEntry, TutorialLog
from workbook.submission.checklist import (
    BLOCKER,
    PAGE_ANALYSIS,
    PAGE_NOTEBOOK,
    PAGE_TUTORIALS,
    WARNING,
    checklist_for,
    function_comment_count,
    function_globals,
    run_checklist,
)

ROOT = Path(__file__).resolve().parents[1]


def _with_step(submission, step_id, **changes):
    steps = tuple(
        replace(step, **changes) if step.id == step_id else step for step in submission.steps
    )
    return replace(submission, steps=steps)


def _with_answer(submission, question_id, text):
    questions = tuple(
        replace(q, answer=text) if q.id == question_id else q for q in submission.questions
    )
    return replace(submission, questions=questions)


def _codes(checklist, page=None):
    return {item.code for item in checklist.items if page is None or item.page == page}


def test_a_complete_submission_passes_with_no_items():
    checklist = run_checklist(complete_submission(), complete_log())
    assert checklist.items == ()
    assert checklist.can_export


def test_a_step_not_passing_its_check_is_a_warning_linking_to_the_notebook():
    submission = _with_step(
        complete_submission(), "step3", passed=False, message="The shape is (5,), expected (V,)."
    )
    checklist = run_checklist(submission, complete_log())
    [item] = checklist.items
    assert (item.code, item.severity, item.page, item.target) == (
        "step_not_passing",
        WARNING,
        PAGE_NOTEBOOK,
        "step3",
    )
    assert "The shape is (5,)" in item.message
    assert checklist.can_export


def test_a_step_never_run_is_flagged():
    submission = _with_step(complete_submission(), "step1", ran=False, passed=None, outputs=())
    checklist = run_checklist(submission, complete_log())
    assert [(i.code, i.target) for i in checklist.items] == [("step_not_passing", "step1")]
    assert "not run" in checklist.items[0].message


def test_predict_next_tokens_without_comments_is_flagged():
    code = (
        "def predict_next_tokens(phrase, k):\n"
        '    ids = tokenizer(phrase, return_tensors="pt")["input_ids"]\n'
        "    top = model(ids).logits[0, -1].softmax(-1).topk(k)\n"
        '    return pd.DataFrame({"tokens": [tokenizer.decode(i) for i in top.indices]})\n'
        "# a comment outside the function does not count\n"
    )
    submission = _with_step(complete_submission(), "step6", code=code)
    checklist = run_checklist(submission, complete_log())
    assert _codes(checklist) == {"function_no_comments"}
    assert checklist.items[0].page == PAGE_NOTEBOOK


def test_predict_next_tokens_reading_a_global_is_flagged_with_the_names():
    code = (
        "def predict_next_tokens(phrase, k):\n"
        "    # Reuses the notebook's input_ids by mistake.\n"
        "    top = model(input_ids).logits[0, -1].softmax(-1).topk(k)\n"
        "    # Decode in a comprehension that also reads a global.\n"
        "    tokens = [tokenizer.decode(i) for i in most_likely_tokens.indices]\n"
        '    return pd.DataFrame({"tokens": tokens, "probabilities": top.values})\n'
    )
    submission = _with_step(complete_submission(), "step6", code=code)
    checklist = run_checklist(submission, complete_log())
    [item] = checklist.items
    assert item.code == "function_globals"
    assert "input_ids" in item.message and "most_likely_tokens" in item.message
    assert "check_global_vars" in item.message


def test_function_helpers_read_code_without_running_it():
    code = "def predict_next_tokens(phrase, k):\n    # one\n    return len(phrase) + torch.x\n"
    assert function_globals(code) == {"torch"}
    assert function_comment_count(code) == 1
    assert function_globals("x = 1\n") is None
    assert function_comment_count("def broken(:\n") is None


def test_a_missing_predict_next_tokens_is_flagged():
    submission = _with_step(complete_submission(), "step6", code="...\n", passed=None, ran=False)
    assert {"function_missing", "step_not_passing"} <= _codes(
        run_checklist(submission, complete_log())
    )


def test_fewer_than_two_reflections_is_flagged():
    log = complete_log()
    one = replace(log, entries={"1": log.entries["1"]})
    checklist = run_checklist(complete_submission(), one)
    assert "entry_missing" in _codes(checklist, PAGE_TUTORIALS)
    blank = replace(log, entries={**log.entries, "2": entry("2", "Learning PyTorch", "")})
    assert "reflection_missing" in _codes(run_checklist(complete_submission(), blank))
    unchosen = TutorialLog(user_id=1, path=None)
    assert "path_missing" in _codes(run_checklist(complete_submission(), unchosen))


def test_two_reflections_from_the_same_category_are_flagged():
    log = complete_log()
    same = replace(
        log,
        entries={**log.entries, "2": entry("2", "PyTorch Recipes", REFLECTION_2)},
    )
    checklist = run_checklist(complete_submission(), same)
    [item] = checklist.items
    assert (item.code, item.severity, item.page) == ("same_category", WARNING, PAGE_TUTORIALS)


def test_a_short_or_vague_reflection_is_flagged():
    log = complete_log()
    short = replace(log, entries={**log.entries, "1": entry("1", "PyTorch Recipes", "Tensors.")})
    assert "reflection_short" in _codes(run_checklist(complete_submission(), short))
    vague_text = " ".join(["It was a really nice experience and I enjoyed it a lot."] * 9)
    vague = replace(log, entries={**log.entries, "1": entry("1", "PyTorch Recipes", vague_text)})
    codes = _codes(run_checklist(complete_submission(), vague))
    assert "reflection_vague" in codes and "reflection_short" not in codes


def test_the_project_path_needs_its_reflection():
    project = ProjectEntry(
        id=1,
        user_id=1,
        created_at=complete_log().entries["1"].created_at,
        description="A classifier for MNIST digits.",
        link="https://colab.example.org/x",
        notebook_name=None,
        notebook_bytes=None,
        notebook_sha256=None,
        reflection=REFLECTION_1,
    )
    log = TutorialLog(user_id=1, path="project", project=project)
    assert run_checklist(complete_submission(), log).items == ()
    no_text = replace(log, project=replace(project, reflection=""))
    assert "reflection_missing" in _codes(run_checklist(complete_submission(), no_text))


def test_an_empty_analysis_answer_is_flagged():
    submission = _with_answer(complete_submission(), "q2", "  \n ")
    [item] = run_checklist(submission, complete_log()).items
    assert (item.code, item.page, item.target) == ("answer_empty", PAGE_ANALYSIS, "q2")
    assert "Q2" in item.message


def test_q1_that_never_mentions_tokens_is_flagged():
    words = "The shape is batch size by number of words by vocabulary size."
    checklist = run_checklist(_with_answer(complete_submission(), "q1", words), complete_log())
    assert _codes(checklist) == {"q1_words"}
    silent = "It is one phrase in a batch, its length, and the vocab size."
    checklist = run_checklist(_with_answer(complete_submission(), "q1", silent), complete_log())
    assert _codes(checklist) == {"q1_no_tokens"}


def test_q3_that_only_takes_the_most_likely_token_is_flagged():
    greedy = "Each time take the argmax, the most likely token, append it and repeat."
    checklist = run_checklist(_with_answer(complete_submission(), "q3", greedy), complete_log())
    [item] = checklist.items
    assert (item.code, item.page) == ("q3_greedy_only", PAGE_ANALYSIS)


def test_a_notebook_that_would_not_validate_blocks_the_export():
    broken = ({"output_type": "stream", "name": "stdout", "text": 42},)
    submission = _with_step(complete_submission(), "step2", outputs=broken)
    checklist = run_checklist(submission, complete_log())
    assert [item.code for item in checklist.blockers] == ["notebook_invalid"]
    assert checklist.items[0].severity == BLOCKER
    assert not checklist.can_export


def test_every_item_links_to_a_page_the_app_registers():
    app = (ROOT / "app.py").read_text(encoding="utf-8")
    submission = _with_answer(complete_submission(), "q1", "")
    submission = _with_step(submission, "step2", passed=False)
    log = replace(complete_log(), entries={"1": complete_log().entries["1"]})
    checklist = run_checklist(submission, log)
    assert {item.page for item in checklist.items} == {PAGE_ANALYSIS, PAGE_NOTEBOOK, PAGE_TUTORIALS}
    for item in checklist.items:
        assert f'"{item.page}"' in app
        assert item.link_label.startswith("Open")


def test_checklist_from_the_store_passes_complete_work_and_sees_new_edits(filled):
    store, user = filled
    assert checklist_for(store, user.id, model_name="smollm2-135m").items == ()
    store.save_answer(user.id, "q3", "Always pick the most likely token (greedy).")
    codes = _codes(checklist_for(store, user.id, model_name="smollm2-135m"))
    assert codes == {"q3_greedy_only"}
