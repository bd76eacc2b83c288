"""The TA review page of a workbook launched from Moodle: sections, class list, grade sync.

Through Streamlit's AppTest against the real app, with the platform of
``tests/lti_services_platform.py`` (``lti1p3platform`` underneath) on its own 127.0.0.x address.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from app_support import APP, open_store
from lti_services_platform import LEARNER, serve_platform
from streamlit.testing.v1 import AppTest

from workbook import review
from workbook.lti.ags import SCORE_SCOPE

PAGE = "pages/review.py"
REFUSAL = "That student does not exist (any more)."


@pytest.fixture
def moodle(db_path):
    """Two Moodle courses (A, B), a TA of A, Ada in A and Bea in B, all launched once."""
    with open_store(db_path) as store:
        keys = store.lti_tool_keys()
    with serve_platform(keys.jwks, host="127.0.0.9") as platform, open_store(db_path) as store:
        store.add_lti_platform(
            issuer=platform.issuer,
            client_id=platform.client_id,
            deployment_id=platform.deployment_id,
            auth_url=f"{platform.base_url}/auth",
            token_url=platform.token_url,
            keyset_url=f"{platform.base_url}/certs",
        )
        people = {}
        for sub, name, role, context in (
            ("t-tom", "Tom TA", "ta", "A"),
            ("s-ada", "Ada Lovelace", "student", "A"),
            ("s-bea", "Bea Bernoulli", "student", "B"),
        ):
            user = store.create_lti_user(
                issuer=platform.issuer, sub=sub, email=f"{sub}@uni.example", name=name, role=role
            )
            store.record_lti_launch(
                user.id,
                issuer=platform.issuer,
                deployment_id=platform.deployment_id,
                context_id=context,
                title=f"Course {context}",
                label=context,
                role=role,
                ags_lineitem=platform.lineitem_url("7") if role == "student" else None,
                ags_scopes=[SCORE_SCOPE],
                nrps_url=platform.nrps_url(context),
            )
            people[sub] = user
        platform.gradable["7"] = {"s-ada", "s-bea"}
        yield platform, people


def open_review(user_id: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["auth:user_id"] = user_id
    at.session_state["auth:last_active"] = time.time()
    at.run()
    return at.switch_page(PAGE).run()


def test_ta_sees_only_their_course_and_is_refused_another_courses_student(moodle):
    _, people = moodle
    at = open_review(people["t-tom"].id)
    assert not at.exception
    assert list(at.dataframe[0].value["Email"]) == ["s-ada@uni.example"]

    # Even a session that asks for Bea's review directly gets the refusal, and none of her work.
    at.session_state["review:student_id"] = people["s-bea"].id
    at.radio(key="review:view").set_value("Review one student").run()
    assert [e.value for e in at.error] == [REFUSAL]
    assert not any("Bea" in t.value for t in at.text)


def test_class_list_button_lists_students_who_never_opened_the_workbook(moodle):
    platform, people = moodle
    platform.members["A"] = [
        {"user_id": "s-ada", "name": "Ada Lovelace", "email": "s-ada@uni.example",
         "roles": [LEARNER]},
        {"user_id": "s-zoe", "name": "Zoë Zed", "email": "zoe@uni.example", "roles": [LEARNER]},
    ]  # fmt: skip
    at = open_review(people["t-tom"].id)
    assert at.button(key="review:class_list:refresh")
    at.button(key="review:class_list:refresh").click().run()
    assert not at.exception
    table = at.dataframe[1].value  # below the roster
    assert list(table["Name"]) == ["Zoë Zed"]
    assert list(table["Status"]) == ["not started"]


def test_release_on_the_page_reaches_moodle_and_the_roster_says_so(moodle, db_path):
    platform, people = moodle
    ada = people["s-ada"]
    at = open_review(people["t-tom"].id)
    at.selectbox(key="review:roster:open").set_value(ada.id).run()
    at.button(key="review:roster:open_button").click().run()
    at.selectbox(key=f"review:{ada.id}:grade").set_value("Excellent").run()
    at.button(key=f"review:{ada.id}:release").click().run()
    assert not at.exception

    # The app's outbox thread posts it, then records that Moodle took it.
    wait_until_sent(db_path, ada.id)
    [score] = platform.received
    assert score.body["userId"] == "s-ada"
    assert score.body["scoreGiven"] == review.grade_points("Excellent")
    at.radio(key="review:view").set_value("Roster").run()
    assert list(at.dataframe[0].value["Moodle"])[0].startswith("Grade sent to Moodle at ")


def wait_until_sent(db_path, student_id: int, timeout_s: float = 30) -> None:
    """Wait for the outbox to record the student's score as received (or time out)."""
    deadline = time.monotonic() + timeout_s
    with open_store(db_path) as store:
        while time.monotonic() < deadline:
            score = store.lti_score_status([student_id]).get(student_id)
            if score is not None and score.state == "sent":
                return
            time.sleep(0.05)


def test_release_whose_grade_cannot_be_queued_warns_and_keeps_the_release(moodle, db_path):
    platform, people = moodle
    ada = people["s-ada"]
    # A real database failure at the last step: every new score row fails to be written
    # (SQLite raises "no such table" from the trigger), while the release itself is saved.
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER no_scores BEFORE INSERT ON lti_scores "
            "BEGIN INSERT INTO missing_table VALUES (1); END"
        )
    comment = "Clear reasoning about the logits."
    at = open_review(people["t-tom"].id)
    at.selectbox(key="review:roster:open").set_value(ada.id).run()
    at.button(key="review:roster:open_button").click().run()
    at.selectbox(key=f"review:{ada.id}:grade").set_value("Excellent").run()
    at.text_area(key=f"review:{ada.id}:comment").input(comment).run()
    at.button(key=f"review:{ada.id}:release").click().run()

    assert not at.exception
    assert [e.value for e in at.error] == []
    [warning] = at.warning
    assert warning.value.startswith("Released: the student sees this feedback.")
    assert "sends it by itself" in warning.value
    # Nothing the TA typed is lost: the form still holds it, and the release holds it too.
    assert at.text_area(key=f"review:{ada.id}:comment").value == comment
    assert at.selectbox(key=f"review:{ada.id}:grade").value == "Excellent"
    with open_store(db_path) as store:
        released = store.released_feedback_for(ada.id)
        assert (released.comment, released.grade) == (comment, review.grade_points("Excellent"))
        assert store.lti_scores_for(ada.id) == []
        # ... and it is what the outbox's periodic catch-up queues.
        assert store.lti_unqueued_releases() == [ada.id]
    assert platform.received == []
