"""The Submit page: checklist with links, the bundle download, the online text to copy."""

from __future__ import annotations

import time

import pytest
from app_support import APP, open_app
from export_data import GOOD_ANSWERS, fill_store, new_store
from streamlit.testing.v1 import AppTest

PAGE = "pages/submit.py"


@pytest.fixture
def student_id(db_path):
    with new_store(db_path) as store:
        return store.create_user("ana@example.org", "Ana Núñez", "long enough password").id


def open_page(student_id: int) -> AppTest:
    return open_app(student_id, PAGE)


def page_links(at: AppTest) -> list[str]:
    return [element.proto.page for element in at.get("page_link")]


def download_buttons(at: AppTest):
    return at.get("download_button")


def test_complete_work_shows_ready_and_offers_the_zip(db_path, student_id):
    with new_store(db_path) as store:
        fill_store(store, student_id)
    at = open_page(student_id)
    assert not at.exception
    assert any("looks ready" in s.value for s in at.success)
    assert not at.warning
    [button] = download_buttons(at)
    assert "u9n1-lm-logits-Ana-Núñez.zip" in button.proto.label
    codes = [c.value for c in at.code]
    assert any(GOOD_ANSWERS["q1"] in c and "<h3>" in c for c in codes)  # the HTML to copy
    assert any(GOOD_ANSWERS["q1"] in c and "MY ANSWER TO Q1" in c for c in codes)  # plain


def test_missing_work_is_listed_with_links_to_where_it_is_fixed(student_id):
    at = open_page(student_id)
    assert not at.exception
    messages = " ".join(w.value for w in at.warning)
    assert "Q1 is not answered yet" in messages
    assert "not run yet" in messages
    assert "Choose your path" in messages
    links = set(page_links(at))
    # The proto names the target by its URL path: the page file's stem.
    assert {"notebook", "analysis", "tutorials"} <= links
    # Warnings do not block: the zip is still offered.
    assert len(download_buttons(at)) == 1


def test_student_text_in_the_preview_and_html_stays_text(db_path, student_id):
    with new_store(db_path) as store:
        fill_store(store, student_id)
        store.save_answer(student_id, "q2", "My <script>alert(1)</script> answer")
    at = open_page(student_id)
    assert not at.exception
    html_code = next(c.value for c in at.code if "<h3>" in c.value)
    assert "<script>" not in html_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_code
    previews = [element.proto.body for element in at.get("html")]
    assert previews and all("<script>" not in body for body in previews)


def test_a_broken_stored_output_blocks_the_download(db_path, student_id):
    with new_store(db_path) as store:
        fill_store(store, student_id)
        store.save_cell(
            student_id,
            "step2",
            code="print(1)\n",
            outputs=[{"output_type": "stream", "name": "stdout", "text": 42}],
            execution_count=3,
            passed=True,
        )
    at = open_page(student_id)
    assert not at.exception
    assert any("would not be valid" in e.value for e in at.error)
    assert download_buttons(at) == [] or all(b.proto.disabled for b in download_buttons(at))


def test_previous_exports_are_listed_with_their_sha256(db_path, student_id):
    with new_store(db_path) as store:
        fill_store(store, student_id)
        store.record_export(student_id, "u9n1-lm-logits-Ana-Núñez.zip", "ab" * 32)
    at = open_page(student_id)
    assert any("ab" * 32 in m.value for m in at.markdown)


def test_staff_are_not_offered_the_submit_page(db_path):
    with new_store(db_path) as store:
        ta = store.create_user("ta@example.org", "TA", "long enough password", role="ta")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth:user_id"] = ta.id
    at.session_state["auth:last_active"] = time.time()
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_downloading_records_the_export_with_its_sha256(db_path, student_id):
    with new_store(db_path) as store:
        fill_store(store, student_id)
    at = open_page(student_id)
    at.download_button(key="submit:download").click().run()
    assert not at.exception
    with new_store(db_path) as store:
        [record] = store.exports_for(student_id)
    assert record.file_name == "u9n1-lm-logits-Ana-Núñez.zip"
    assert len(record.sha256) == 64 and int(record.sha256, 16) >= 0
    assert any(record.sha256 in s.value for s in at.success)
