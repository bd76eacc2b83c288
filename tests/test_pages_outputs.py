"""Pages draw a student's rich outputs only in the sandboxed frame (AppTest; no browser).

The browser proof that nothing runs or loads is ``tests/e2e/test_student_output_isolation.py``;
this checks, quickly, that neither the TA review page nor the notebook page ever hands the
student's markup to ``st.html``/``st.markdown``, only to ``st.iframe`` as a sandboxed srcdoc.
"""

from __future__ import annotations

import html

from app_support import open_app, open_store

from workbook.web.output_view import CONTENT_SECURITY_POLICY

PASSWORD = "long enough password"
MARKUP = '<b id="rich">rich</b><script>alert("pwned")</script><img src="http://127.0.0.1:9/x">'
OUTPUTS = [
    {"output_type": "display_data", "data": {"text/html": MARKUP, "text/plain": "<b>"}},
    {"output_type": "display_data", "data": {"application/javascript": "alert(1)"}},
    {"output_type": "stream", "name": "stdout", "text": "<script>printed</script>\n"},
]


def _frames_and_page_markup(at) -> tuple[list[str], str]:
    srcdocs = [element.proto.srcdoc for element in at.get("iframe")]
    markup = "\n".join(
        [element.proto.body for element in at.get("html")]
        + [element.proto.body for element in at.get("markdown")]
    )
    return srcdocs, markup


def _assert_drawn_safely(at) -> None:
    assert not at.exception
    srcdocs, page_markup = _frames_and_page_markup(at)
    assert MARKUP not in page_markup and "alert(" not in page_markup
    (srcdoc,) = [doc for doc in srcdocs if html.escape(MARKUP, quote=True) in doc]
    assert '<iframe sandbox="" ' in srcdoc
    assert CONTENT_SECURITY_POLICY in srcdoc
    assert "A JavaScript output is never run here." in [c.value for c in at.caption]
    assert "<script>printed</script>" in [c.value.strip() for c in at.code]


def test_ta_review_page_frames_student_html(db_path):
    with open_store(db_path) as store:
        ada = store.create_user("ada@example.org", "Ada Lovelace", PASSWORD)
        ta = store.create_user("ta@example.org", "Tess TA", PASSWORD, role="ta")
        store.save_cell(ada.id, "step5", code="top", outputs=OUTPUTS, passed=False, message="x")
    at = open_app(ta.id, "pages/review.py")
    at.selectbox(key="review:roster:open").set_value(ada.id).run()
    at.button(key="review:roster:open_button").click().run()
    _assert_drawn_safely(at)


def test_students_notebook_page_frames_their_own_html_too(db_path):
    with open_store(db_path) as store:
        ada = store.create_user("ada@example.org", "Ada Lovelace", PASSWORD)
        store.save_cell(ada.id, "step5", code="top", outputs=OUTPUTS, passed=None)
    _assert_drawn_safely(open_app(ada.id, "pages/notebook.py"))
