"""The Moodle bundle: notebook (golden, valid, deterministic), online text, zip, file names."""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest
from export_data import (
    BUILT_AT,
    GOOD_ANSWERS,
    STEP_OUTPUTS,
    complete_submission,
)

from workbook.__main__ import main as cli_main
from workbook.exercise import content
from workbook.submission.bundle import (
    BUNDLE_FILES,
    NOTEBOOK_NAME,
    build_bundle,
    bundle_file_name,
    canonical_notebook,
    export_for,
    safe_file_name,
)
from workbook.submission.notebook import (
    build_notebook,
    notebook_bytes,
    validate_notebook,
    verbatim_markdown,
)
from workbook.submission.online_text import moodle_html, moodle_text
from workbook.submission.snapshot import (
    ExportError,
    QuestionContent,
    ReflectionContent,
    gather_submission,
)

GOLDEN = Path(__file__).parent / "golden" / NOTEBOOK_NAME


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


# --- the notebook ------------------------------------------------------------------------
def test_notebook_matches_the_golden_file_without_volatile_fields():
    data = notebook_bytes(build_notebook(complete_submission(), built_at=BUILT_AT))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(data)
    expected = canonical_notebook(GOLDEN.read_bytes())
    # A later build time must not matter: it is the one volatile field.
    later = build_notebook(complete_submission(), built_at=BUILT_AT + timedelta(days=3))
    assert canonical_notebook(notebook_bytes(later)) == expected


def test_notebook_validates_as_nbformat_4():
    nb = build_notebook(complete_submission(), built_at=BUILT_AT)
    validate_notebook(nb)
    reread = nbformat.reads(notebook_bytes(nb).decode("utf-8"), as_version=4)
    nbformat.validate(reread)
    assert reread.nbformat == 4


def test_notebook_has_setup_then_each_step_with_its_instructions_and_code():
    submission = complete_submission()
    nb = build_notebook(submission, built_at=BUILT_AT)
    code_cells = _code_cells(nb)
    assert [cell.id for cell in code_cells] == [step.id for step in submission.steps]
    for step, cell in zip(submission.steps, code_cells, strict=True):
        index = nb.cells.index(cell)
        instructions = nb.cells[index - 1]
        assert instructions.cell_type == "markdown"
        assert step.title in instructions.source
        assert step.instructions in instructions.source
        assert step.code in cell.source
    assert nb.cells[0].source.startswith(f"# {submission.title}")
    assert submission.student_name in nb.cells[0].source


def test_setup_cell_says_how_to_run_the_notebook_elsewhere():
    nb = build_notebook(complete_submission(), built_at=BUILT_AT)
    setup = _code_cells(nb)[0]
    comments = [line for line in setup.source.splitlines() if line.lstrip().startswith("#")]
    assert any("distilgpt2" in line for line in comments)


def test_setup_cell_without_a_hint_gets_one_added():
    submission = complete_submission()
    bare = replace(submission.steps[0], code="import torch\n")
    nb = build_notebook(replace(submission, steps=(bare, *submission.steps[1:])))
    setup = _code_cells(nb)[0]
    assert "distilgpt2" in setup.source
    assert setup.source.endswith("import torch\n")


def test_outputs_are_the_stored_ones_with_counts_renumbered_in_order():
    submission = complete_submission()
    nb = build_notebook(submission, built_at=BUILT_AT)
    code_cells = _code_cells(nb)
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    by_id = {cell.id: cell for cell in code_cells}
    assert by_id["step2"].outputs[0]["text"] == STEP_OUTPUTS["step2"][0]["text"]
    # The stored execute_result said 17; it now matches its cell.
    result = by_id["step5"].outputs[0]
    assert result["execution_count"] == by_id["step5"].execution_count
    # Kernel-only keys are dropped so the notebook validates.
    assert "transient" not in by_id["step6"].outputs[0]


def test_a_cell_never_run_has_no_outputs_and_no_execution_count():
    submission = complete_submission()
    steps = list(submission.steps)
    steps[3] = replace(steps[3], ran=False, outputs=())
    nb = build_notebook(replace(submission, steps=tuple(steps)), built_at=BUILT_AT)
    cells = _code_cells(nb)
    assert cells[3].execution_count is None
    assert cells[3].outputs == []
    counted = [c.execution_count for c in cells if c.execution_count is not None]
    assert counted == list(range(1, len(cells)))
    validate_notebook(nb)


def test_each_answer_follows_its_question_and_is_visibly_marked():
    submission = complete_submission()
    nb = build_notebook(submission, built_at=BUILT_AT)
    ids = [cell.id for cell in nb.cells]
    for question in submission.questions:
        q_index = ids.index(f"{question.id}-question")
        answer = nb.cells[q_index + 1]
        assert answer.id == f"{question.id}-answer"
        assert question.prompt in nb.cells[q_index].source.replace("> ", "")
        assert f"My answer to {question.label}" in answer.source
        assert verbatim_markdown(question.answer.strip()) in answer.source
        # The prompt is quoted; the answer is not, so the two look different.
        assert nb.cells[q_index].source.splitlines()[-1].startswith(">")
        assert not answer.source.startswith(">")


def test_tutorial_log_section_holds_both_reflections():
    submission = complete_submission()
    nb = build_notebook(submission, built_at=BUILT_AT)
    ids = [cell.id for cell in nb.cells]
    start = ids.index("tutorial-log")
    assert ids[start + 1 :] == ["tutorial-1", "tutorial-2"]
    for entry, cell in zip(submission.reflections, nb.cells[start + 1 :], strict=True):
        for typed in (entry.text, entry.title, entry.category):
            assert verbatim_markdown(typed) in cell.source


def _log_section(submission) -> tuple[str, str, str]:
    """The tutorial log as the notebook, the HTML and the plain text show it."""
    nb = build_notebook(submission, built_at=BUILT_AT)
    start = [cell.id for cell in nb.cells].index("tutorial-log")
    notebook = "\n\n".join(cell.source for cell in nb.cells[start:])
    page = moodle_html(submission)
    text = moodle_text(submission)
    return notebook, page[page.index("Tutorial log") :], text[text.index("Tutorial log") :]


@pytest.mark.parametrize(
    ("path", "placeholder"),
    [("project", "(mini-project not logged)"), ("tutorials", "(no tutorials logged)")],
)
def test_an_empty_tutorial_log_reads_the_same_in_the_notebook_and_the_online_text(
    path, placeholder
):
    submission = replace(complete_submission(), tutorial_path=path, reflections=())
    for shown in _log_section(submission):
        assert placeholder in shown
        assert ("mini-project instead of two tutorials" in shown) == (path == "project")
        assert "(no tutorials logged)" not in shown or path != "project"


@pytest.mark.parametrize(
    ("entry", "heading"),
    [
        (ReflectionContent("1", "Tensors\n  and   autograd"), "Tutorial 1: Tensors and autograd"),
        (ReflectionContent("2", " "), "Tutorial 2: (untitled)"),
        (ReflectionContent("project", ""), "Mini-project: (no description)"),
    ],
)
def test_reflection_headings_read_the_same_in_the_notebook_and_the_online_text(entry, heading):
    submission = replace(complete_submission(), reflections=(entry,))
    for shown in _log_section(submission):
        assert heading in shown


def test_metadata_records_student_model_and_build_time():
    nb = build_notebook(complete_submission(), built_at=BUILT_AT)
    meta = nb.metadata["workbook"]
    assert meta["student"] == "Ana Núñez"
    assert meta["model"] == "smollm2-135m"
    assert meta["built_at"] == BUILT_AT.isoformat(timespec="seconds")
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_an_output_nbformat_rejects_makes_validation_fail_with_a_clear_message():
    submission = complete_submission()
    broken = replace(
        submission.steps[1],
        outputs=({"output_type": "stream", "name": "stdout", "text": 42},),
    )
    nb = build_notebook(replace(submission, steps=(submission.steps[0], broken)))
    with pytest.raises(ExportError, match="would not be valid"):
        validate_notebook(nb)
    with pytest.raises(ExportError):
        build_bundle(replace(submission, steps=(submission.steps[0], broken)))


# --- the online text ---------------------------------------------------------------------
def test_html_contains_every_question_and_answer():
    submission = complete_submission()
    page = moodle_html(submission)
    for question in submission.questions:
        assert question.heading in page
        assert f"My answer to {question.label}" in page
    assert "the sequence length in tokens (not words)" in page
    for entry in submission.reflections:
        assert entry.text[:60] in page


def test_html_escapes_student_text():
    submission = complete_submission()
    evil = "I tried <script>alert('x')</script> & <b>bold</b>"
    question = replace(submission.questions[0], answer=evil)
    page = moodle_html(replace(submission, questions=(question, *submission.questions[1:])))
    assert "<script>" not in page
    assert "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_html_escapes_names_and_reflections_too():
    submission = complete_submission()
    entry = replace(submission.reflections[0], text="<img src=x onerror=alert(1)>", title="<i>")
    page = moodle_html(
        replace(
            submission,
            student_name="<script>",
            reflections=(entry, submission.reflections[1]),
        )
    )
    assert "<img" not in page
    assert "<script>" not in page
    assert "<i>" not in page


def test_code_in_answers_stays_preformatted():
    text = "Fenced:\n\n```python\nx = a < b\n```\n\nIndented:\n\n    for t in tokens:\n        print(t)\n\nDone."
    submission = complete_submission()
    question = QuestionContent(id="q3", title="Q3.", prompt="Why?", answer=text)
    page = moodle_html(replace(submission, questions=(question,)))
    assert "<pre><code>x = a &lt; b</code></pre>" in page
    assert "<pre><code>for t in tokens:\n    print(t)</code></pre>" in page
    assert "<p>Done.</p>" in page
    assert page.index("Fenced:") < page.index("x = a") < page.index("Indented:")


def test_unanswered_question_is_shown_as_not_answered():
    submission = complete_submission()
    question = replace(submission.questions[1], answer="   ")
    sub = replace(submission, questions=(submission.questions[0], question))
    assert "(not answered)" in moodle_html(sub)
    assert "(not answered)" in moodle_text(sub)
    nb = build_notebook(sub, built_at=BUILT_AT)
    assert "(not answered)" in next(c for c in nb.cells if c.id == "q2-answer").source


def test_plain_text_has_every_question_and_answer_in_order():
    submission = complete_submission()
    text = moodle_text(submission)
    positions = []
    for question in submission.questions:
        positions.append(text.index(question.heading))
        positions.append(text.index(f"MY ANSWER TO {question.label}:"))
        positions.append(text.index(question.answer.strip()[:50]))
    assert positions == sorted(positions)
    assert "<" not in text.replace("<script>", "")


# --- the bundle --------------------------------------------------------------------------
def test_zip_contains_the_notebook_the_texts_and_the_how_to():
    submission = complete_submission()
    bundle = build_bundle(submission, built_at=BUILT_AT)
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        assert sorted(archive.namelist()) == sorted(BUNDLE_FILES)
        assert archive.read(NOTEBOOK_NAME) == bundle.notebook
        page = archive.read("moodle-text.html").decode("utf-8")
        assert bundle.html in page
        assert page.startswith("<!DOCTYPE html>")
        assert '<meta charset="utf-8">' in page
        assert archive.read("moodle-text.txt").decode("utf-8") == bundle.text
        howto = archive.read("HOW-TO-SUBMIT.txt").decode("utf-8")
    assert NOTEBOOK_NAME in howto and "online" in howto.lower()
    assert bundle.notebook_sha256 in howto
    assert bundle.file_name == "u9n1-lm-logits-Ana-Núñez.zip"
    nbformat.validate(nbformat.reads(bundle.notebook.decode("utf-8"), as_version=4))


def test_bundle_sha256_is_the_hash_of_the_zip():
    import hashlib

    bundle = build_bundle(complete_submission(), built_at=BUILT_AT)
    assert bundle.sha256 == hashlib.sha256(bundle.data).hexdigest()
    assert bundle.notebook_sha256 == hashlib.sha256(bundle.notebook).hexdigest()
    # Same work, same build time: byte-identical zip.
    assert build_bundle(complete_submission(), built_at=BUILT_AT).data == bundle.data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ana Núñez", "Ana-Núñez"),
        ("李雷", "李雷"),
        ("Zoë  Šimić\t", "Zoë-Šimić"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ('we:ird*na?me<>|"', "we-ird-na-me"),
        ("bell\x07 and\x00 nul\x1b[31m", "bell-and-nul[31m"),
        ("right\u202eto\u200bleft", "righttoleft"),
        ("", "student"),
        ("   ...   ", "student"),
        ("CON", "student-CON"),
        ("nul.txt", "student-nul.txt"),
    ],
)
def test_safe_file_name_keeps_unicode_and_removes_what_is_unsafe(name, expected):
    assert safe_file_name(name) == expected


def test_safe_file_name_is_bounded_and_never_a_path():
    long = safe_file_name("x" * 500)
    assert len(long) <= 80
    for name in ("../..", "/", "\\\\server\\share", "a/../b", "\n\r"):
        safe = safe_file_name(name)
        assert safe and "/" not in safe and "\\" not in safe and safe not in {".", ".."}
        assert all(ch.isprintable() for ch in safe)
    assert bundle_file_name("../x") == "u9n1-lm-logits-x.zip"


# --- from the store ----------------------------------------------------------------------
def test_gathered_submission_holds_the_students_latest_work(filled):
    store, user = filled
    store.save_answer(user.id, "q2", "A newer answer about the second-to-last token.")
    submission = gather_submission(store, user.id, model_name="smollm2-135m")
    assert [s.id for s in submission.steps] == content.step_ids()
    assert all(s.passed for s in submission.steps if not s.given)
    answers = {q.id: q.answer for q in submission.questions}
    assert answers["q1"] == GOOD_ANSWERS["q1"]
    assert answers["q2"] == "A newer answer about the second-to-last token."
    assert [r.slot for r in submission.reflections] == ["1", "2"]
    assert submission.work_updated_at is not None


def test_a_code_only_save_after_a_run_exports_the_new_code_without_stale_outputs(filled):
    store, user = filled
    store.save_cell(user.id, "step2", code="print('changed')\n")
    submission = gather_submission(store, user.id, model_name="smollm2-135m")
    step2 = next(s for s in submission.steps if s.id == "step2")
    assert step2.code == "print('changed')\n"
    assert step2.outputs == () and not step2.ran


def test_project_path_exports_the_project_reflection(filled):
    store, user = filled
    store.set_tutorial_path(user.id, "project")
    store.log_project(
        user.id,
        description="An MNIST classifier <from scratch>",
        link="https://colab.example.org/nb",
        reflection="I wrote the training loop myself.",
    )
    submission = gather_submission(store, user.id, model_name="smollm2-135m")
    assert [r.slot for r in submission.reflections] == ["project"]
    page = moodle_html(submission)
    assert "mini-project" in page and "&lt;from scratch&gt;" in page
    assert "I wrote the training loop myself." in moodle_text(submission)


def test_reexporting_unchanged_work_gives_the_same_notebook_content(filled):
    store, user = filled
    first = export_for(store, user.id, model_name="smollm2-135m", built_at=BUILT_AT)
    second = export_for(
        store, user.id, model_name="smollm2-135m", built_at=BUILT_AT + timedelta(hours=5)
    )
    assert canonical_notebook(first.notebook) == canonical_notebook(second.notebook)
    assert (
        json.loads(first.notebook)["metadata"]["workbook"]["built_at"]
        != json.loads(second.notebook)["metadata"]["workbook"]["built_at"]
    )
    # Only the facade records an export (and tells Moodle): see test_lti_services.py.
    assert store.exports_for(user.id) == []


def test_cli_export_writes_the_bundle_and_records_it(filled, tmp_path, capsys):
    store, user = filled
    out = tmp_path / "out"
    status = cli_main(
        ["--db", str(store.path), "export", "--email", "ANA@example.org", "--out", str(out)]
    )
    assert status == 0
    target = out / "u9n1-lm-logits-Ana-Núñez.zip"
    assert target.is_file()
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == sorted(BUNDLE_FILES)
    import hashlib

    with zipfile.ZipFile(target) as archive:
        notebook_digest = hashlib.sha256(archive.read(NOTEBOOK_NAME)).hexdigest()
    printed = capsys.readouterr().out
    assert hashlib.sha256(target.read_bytes()).hexdigest() in printed
    assert notebook_digest in printed
    # The notebook is what a TA finds on Moodle, so its hash is the one recorded.
    assert [r.sha256 for r in store.exports_for(user.id)] == [notebook_digest]


def test_cli_export_with_files_and_without_recording(filled, tmp_path):
    store, user = filled
    out = tmp_path / "out"
    argv = ["--db", str(store.path), "export", "--email", user.email, "--out", str(out)]
    assert cli_main([*argv, "--files", "--no-record"]) == 0
    for name in BUNDLE_FILES:
        assert (out / name).is_file()
    assert store.exports_for(user.id) == []


def test_cli_reports_an_unknown_email_and_a_missing_database(filled, tmp_path, capsys):
    store, _ = filled
    argv = ["export", "--email", "nobody@example.org", "--out", str(tmp_path)]
    assert cli_main(["--db", str(store.path), *argv]) == 1
    assert "no account" in capsys.readouterr().err
    assert cli_main(["--db", str(tmp_path / "missing.db"), *argv]) == 1
    assert "no database" in capsys.readouterr().err


def test_notebook_metadata_says_when_the_work_was_last_saved(filled):
    store, user = filled
    submission = gather_submission(store, user.id, model_name="smollm2-135m")
    nb = build_notebook(submission, built_at=BUILT_AT)
    saved = nb.metadata["workbook"]["work_saved_at"]
    assert saved == submission.work_updated_at.isoformat(timespec="seconds")


def test_cli_checklist_prints_each_item_and_exits_zero_when_only_warnings(filled, capsys):
    store, user = filled
    store.save_answer(user.id, "q1", "")
    assert cli_main(["--db", str(store.path), "checklist", "--email", user.email]) == 0
    out = capsys.readouterr().out
    assert "[warning] Q1 is not answered yet." in out
    assert "pages/analysis.py" in out
