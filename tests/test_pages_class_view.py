"""The Class page through Streamlit's AppTest: who may open it, what it draws, where it links."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from app_support import APP, ROOT, open_store
from streamlit.testing.v1 import AppTest

from bench._class_data import generate_class

PAGE = "pages/class_view.py"
PASSWORD = "long enough password"


@pytest.fixture
def people(db_path):
    with open_store(db_path) as store:
        ta = store.create_user("ta@example.org", "Tess TA", PASSWORD, role="ta")
        ids, _records = generate_class(store, 8, 12, seed=3, now=datetime.now(UTC), minutes=40)
        names = [store.user(i).name for i in ids]
    return ta, ids, names


def signed_in(user_id: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth:user_id"] = user_id
    at.session_state["auth:last_active"] = time.time()
    at.run()
    return at


def sent_text(at: AppTest) -> str:
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_staff_see_the_class_with_charts_captions_and_the_stuck_list(people):
    ta, _ids, names = people
    at = signed_in(ta.id).switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Class"]
    headers = [h.value for h in at.header]
    assert headers == [
        "Progress",
        "Misconceptions, live",
        "Who is stuck, now",
        "Time and attempts to pass",
        "Solution clusters",
    ]
    charts = at.get("vega_lite_chart")
    assert len(charts) == 7
    captions = " ".join(c.value for c in at.caption)
    assert "Progress per step. Setup:" in captions and "ever passed" in captions
    sent = sent_text(at)
    assert any(name in sent for name in names)  # the stuck list names students


def test_projection_mode_shows_no_names_and_no_code(people):
    ta, _ids, names = people
    at = signed_in(ta.id).switch_page(PAGE).run()
    at.toggle(key="class:projection").set_value(True).run()
    assert not at.exception
    sent = sent_text(at)
    assert not any(name in sent for name in names)
    assert not at.code  # no representative code, no diffs


def test_a_stuck_student_opens_in_ta_review(people):
    ta, _ids, _names = people
    at = signed_in(ta.id).switch_page(PAGE).run()
    picker = at.selectbox(key="class:stuck:pick")
    label = picker.format_func(picker.value)
    at.button(key="class:stuck:open").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["TA review"]
    assert at.radio(key="review:view").value == "Review one student"
    assert label.split(" · ")[0] in sent_text(at)


def test_a_student_is_refused_the_class_page_and_sees_no_class_data(people):
    _ta, ids, names = people
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        signed_in(ids[0]).switch_page(PAGE)
    AppTest.from_file(APP, default_timeout=30).run()
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=30)
    at.session_state["auth:user_id"] = ids[0]
    at.session_state["auth:last_active"] = time.time()
    at.run()
    assert [e.value for e in at.error] == ["This page is for course staff only."]
    sent = sent_text(at)
    assert not any(name in sent for name in names[1:])
    assert not at.get("vega_lite_chart")
