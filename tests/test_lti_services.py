"""Grades to the platform (AGS), the class list (NRPS) and sections kept apart.

The platform is ``tests/lti_services_platform.py``: ``lti1p3platform`` checks the tool's client
assertion against the tool's published key set and issues the access tokens, on its own
127.0.0.x address, with Moodle's rules for scores. The outbox is driven round by round
(``deliver_due``) under a clock of the test's, except in the test of the background thread.
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from lti_services_platform import INSTRUCTOR, LEARNER, serve_platform

from workbook import Settings, Workbook, review
from workbook.lti import LtiServices
from workbook.lti.ags import SCORE_SCOPE, scores_url
from workbook.lti.outbox import BASE_DELAY_S, MAX_DELAY_S, backoff_s
from workbook.lti.services import NOT_YOURS
from workbook.review.worksheet import WORKSHEET_HEADERS
from workbook.submission import export_for

GRADE = "Meets expectations"
COMMENT = "Good work on the logits.\nLook again at step 5's temperatures."


class Clock:
    """The outbox's time, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def wb(tmp_path):
    book = Workbook(
        Settings.from_env(
            {
                "WORKBOOK_DB": str(tmp_path / "workbook.db"),
                "WORKBOOK_WORK_DIR": str(tmp_path / "kernels"),
                "WORKBOOK_PRELOAD": "0",
            }
        )
    )
    book.lti = LtiServices(book, autostart=False)
    yield book
    book.lti.outbox.stop()
    book.store.close()


@pytest.fixture
def platform(wb):
    keys = wb.store.lti_tool_keys()
    with serve_platform(keys.jwks) as served:
        wb.store.add_lti_platform(
            issuer=served.issuer,
            client_id=served.client_id,
            deployment_id=served.deployment_id,
            auth_url=f"{served.base_url}/mod/lti/auth.php",
            token_url=served.token_url,
            keyset_url=f"{served.base_url}/mod/lti/certs.php",
            name="Test Moodle",
        )
        yield served


@pytest.fixture
def clock(wb):
    moment = Clock()
    wb.lti.outbox.clock = moment
    return moment


def launch(wb, platform, *, sub, name, role, context="A", lineitem=None):
    """A user as a launch from ``context`` leaves them (account, identity, membership)."""
    user = wb.store.create_lti_user(
        issuer=platform.issuer, sub=sub, email=f"{sub}@uni.example", name=name, role=role
    )
    wb.store.record_lti_launch(
        user.id,
        issuer=platform.issuer,
        deployment_id=platform.deployment_id,
        context_id=context,
        title=f"Course {context}",
        label=context,
        role=role,
        ags_lineitem=lineitem,
        ags_scopes=[SCORE_SCOPE] if lineitem else [],
        nrps_url=platform.nrps_url(context),
    )
    return user


@pytest.fixture
def course(wb, platform):
    """A TA and a gradable student of context A, with a Moodle line item (``?type_id=``)."""
    platform.gradable["7"] = {"s-ada"}
    ta = launch(wb, platform, sub="t-tom", name="Tom TA", role="ta")
    ada = launch(
        wb, platform, sub="s-ada", name="Ada", role="student", lineitem=platform.lineitem_url("7")
    )
    return ta, ada


def release(wb, ta, student, grade=GRADE):
    return wb.lti.release_feedback(
        ta, student.id, grade=grade, comment=COMMENT, item_comments={"q1": "Clear answer."}
    )


def worksheet_cell(email: str, maximum: str) -> str:
    """The Grade cell the Moodle worksheet gets for this student out of ``maximum``."""

    def fill(store):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(WORKSHEET_HEADERS)
        row = dict.fromkeys(WORKSHEET_HEADERS, "")
        row.update({"Email address": email, "Maximum Grade": maximum})
        writer.writerow([row[h] for h in WORKSHEET_HEADERS])
        data = review.fill_worksheet(
            buffer.getvalue().encode(), review.worksheet_grades(store)
        ).data
        filled = list(csv.DictReader(io.StringIO(data.decode())))
        return filled[0]["Grade"]

    return fill


# --- grades --------------------------------------------------------------------------------


def test_released_grade_reaches_the_platform_score_endpoint(wb, platform, course, clock):
    ta, ada = course
    release(wb, ta, ada)
    assert platform.received == []  # the release only queued it
    assert wb.lti.outbox.deliver_due() == 1

    [score] = platform.received
    # Posted to <lineitem>/scores with Moodle's query string kept after the path.
    assert score.path == "/mod/lti/services.php/2/lineitems/7/lineitem/scores"
    assert score.query == "type_id=3"
    assert score.content_type == "application/vnd.ims.lis.v1.score+json"
    body = score.body
    assert body["userId"] == "s-ada"
    assert body["activityProgress"] == "Completed"
    assert body["gradingProgress"] == "FullyGraded"
    assert body["scoreGiven"] == review.grade_points(GRADE)
    assert body["scoreMaximum"] == review.MAX_POINTS
    # The same fraction the Moodle worksheet writes for a point-graded assignment.
    cell = worksheet_cell(ada.email, "100.00")(wb.store)
    assert f"{body['scoreGiven'] / body['scoreMaximum'] * 100:.2f}" == cell
    assert body["comment"].startswith(COMMENT)
    assert f"{review.item_label('q1')}: Clear answer." in body["comment"]
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None and stamp == clock.now
    assert set(body) == {
        "userId",
        "activityProgress",
        "gradingProgress",
        "scoreGiven",
        "scoreMaximum",
        "comment",
        "timestamp",
    }
    roster = wb.lti.roster(ta)
    assert roster.records[0]["moodle"] == f"Grade sent to Moodle at {clock.now:%Y-%m-%d %H:%M} UTC"


def test_each_release_is_stamped_newer_than_the_last_and_tokens_are_reused(
    wb, platform, course, clock
):
    ta, ada = course
    release(wb, ta, ada, grade="Progressing")
    wb.lti.outbox.deliver_due()
    release(wb, ta, ada, grade="Excellent")  # the same second, by the test's clock
    wb.lti.outbox.deliver_due()

    first, second = (datetime.fromisoformat(s.body["timestamp"]) for s in platform.received)
    assert second - first >= timedelta(seconds=1)  # Moodle compares whole seconds
    assert [s.body["scoreGiven"] for s in platform.received] == [
        review.grade_points("Progressing"),
        review.grade_points("Excellent"),
    ]
    assert platform.token_requests == 1  # the access token was cached


def test_a_token_the_platform_no_longer_accepts_is_replaced_at_once(wb, platform, course, clock):
    ta, ada = course
    platform.fail_next = [401]  # e.g. the platform restarted and forgot its tokens
    release(wb, ta, ada)
    assert wb.lti.outbox.deliver_due() == 1
    assert platform.token_requests == 2
    assert wb.store.lti_scores_for(ada.id)[0].state == "sent"


def test_a_failed_post_stays_queued_and_is_delivered_on_retry(wb, platform, course, clock):
    ta, ada = course
    platform.fail_next = [503]
    release(wb, ta, ada)
    assert wb.lti.outbox.deliver_due() == 0
    [queued] = wb.store.lti_scores_for(ada.id)
    assert (queued.state, queued.attempts) == ("queued", 1)
    assert queued.next_try_at == clock.now + timedelta(seconds=BASE_DELAY_S)
    assert "HTTP 503" in wb.lti.roster(ta).records[0]["moodle"]

    assert wb.lti.outbox.deliver_due() == 0  # not due yet: nothing posted
    clock.advance(BASE_DELAY_S)
    assert wb.lti.outbox.deliver_due() == 1
    [sent] = wb.store.lti_scores_for(ada.id)
    assert sent.state == "sent"
    assert len(platform.received) == 1


def test_the_back_off_doubles_up_to_its_cap(wb, platform, course, clock):
    ta, ada = course
    outbox = wb.lti.outbox
    outbox.max_delay_s = BASE_DELAY_S * 4
    platform.fail_next = [500] * 5
    release(wb, ta, ada)
    waits = []
    for _ in range(4):
        before = clock.now
        outbox.deliver_due()
        [score] = wb.store.lti_scores_for(ada.id)
        waits.append((score.next_try_at - before).total_seconds())
        clock.now = score.next_try_at
    assert waits == [BASE_DELAY_S, BASE_DELAY_S * 2, BASE_DELAY_S * 4, BASE_DELAY_S * 4]
    outbox.deliver_due()
    outbox.deliver_due()
    clock.now = wb.store.lti_scores_for(ada.id)[0].next_try_at
    outbox.deliver_due()
    assert wb.store.lti_scores_for(ada.id)[0].state == "sent"


def test_the_back_off_stays_at_its_cap_however_long_it_retries():
    assert backoff_s(1) == BASE_DELAY_S
    assert backoff_s(5_000) == MAX_DELAY_S


def test_a_score_whose_answer_was_lost_is_stamped_anew_after_409(wb, platform, course, clock):
    ta, ada = course
    platform.lose_next = 1  # taken, but the answer never reaches the tool
    release(wb, ta, ada)
    wb.lti.outbox.deliver_due()
    clock.advance(BASE_DELAY_S)
    assert wb.lti.outbox.deliver_due() == 1  # 409 for the old timestamp, then sent anew

    assert platform.refused == [(409, "s-ada")]
    first, again = (datetime.fromisoformat(s.body["timestamp"]) for s in platform.received)
    assert again - first >= timedelta(seconds=1)
    assert wb.store.lti_scores_for(ada.id)[0].state == "sent"


def test_a_newer_score_held_by_the_platform_is_an_error_for_the_ta(wb, platform, course, clock):
    ta, ada = course
    far = int((clock.now + timedelta(days=1)).timestamp())
    platform.last_seconds[("7", "s-ada")] = far  # e.g. set by another tool
    release(wb, ta, ada)
    wb.lti.outbox.deliver_due()

    [score] = wb.store.lti_scores_for(ada.id)
    assert score.state == "error"
    assert platform.refused == [(409, "s-ada"), (409, "s-ada")]
    assert "newer grade" in wb.lti.roster(ta).records[0]["moodle"]


def test_a_non_gradable_user_is_recorded_as_an_error_and_not_retried(wb, platform, course, clock):
    ta, ada = course
    platform.gradable["7"] = set()  # e.g. no longer enrolled as a learner
    release(wb, ta, ada)
    wb.lti.outbox.deliver_due()
    [score] = wb.store.lti_scores_for(ada.id)
    assert score.state == "error"
    assert "HTTP 400" in score.last_error

    clock.advance(24 * 3600)
    wb.lti.outbox.deliver_due()
    assert platform.refused == [(400, "s-ada")]  # asked once only
    assert wb.lti.roster(ta).records[0]["moodle"].startswith("Grade not accepted by Moodle")


def test_a_client_assertion_the_platform_cannot_verify_keeps_the_grade_queued(wb, clock):
    keys = wb.store.lti_tool_keys()
    stale = keys.jwks()  # a platform that never saw the key set after the rotation below
    keys.rotate(keep_old_for=timedelta(0))
    with serve_platform(lambda: stale, host="127.0.0.8") as other:
        other.gradable["7"] = {"s-bob"}
        wb.store.add_lti_platform(
            issuer=other.issuer,
            client_id=other.client_id,
            deployment_id=other.deployment_id,
            auth_url=f"{other.base_url}/auth",
            token_url=other.token_url,
            keyset_url=f"{other.base_url}/certs",
        )
        prof = wb.store.create_user("prof@uni.example", "Prof", "correct horse", role="instructor")
        bob = launch(
            wb, other, sub="s-bob", name="Bob", role="student", lineitem=other.lineitem_url("7")
        )
        release(wb, prof, bob)
        wb.lti.outbox.deliver_due()
        [score] = wb.store.lti_scores_for(bob.id)
        assert (score.state, score.attempts) == ("queued", 1)  # kept for after the fix
        assert "refused the workbook's access request" in score.last_error
        assert other.received == []


def test_an_export_tells_the_platform_the_homework_was_handed_in(wb, platform, course, clock):
    ta, ada = course
    wb.lti.record_export(ada.id, "ada-logits.zip", "a" * 64)
    wb.lti.outbox.deliver_due()
    [score] = platform.received
    assert score.body["userId"] == "s-ada"
    assert score.body["activityProgress"] == "Submitted"
    assert score.body["gradingProgress"] == "PendingManual"
    assert "scoreGiven" not in score.body
    assert wb.store.exports_for(ada.id)[-1].file_name == "ada-logits.zip"
    assert wb.lti.roster(ta).records[0]["moodle"].startswith("Hand-in sent to Moodle")

    # Once graded, an export does not take the grade back out of Moodle's gradebook.
    clock.advance(5)
    release(wb, ta, ada)
    wb.lti.record_export(ada.id, "ada-logits-2.zip", "b" * 64)
    wb.lti.outbox.deliver_due()
    assert [s.body["gradingProgress"] for s in platform.received] == [
        "PendingManual",
        "FullyGraded",
    ]


def test_the_outbox_thread_posts_in_the_background(wb, platform, course):
    ta, ada = course
    wb.lti = LtiServices(wb)  # starts its thread on the first queued score
    release(wb, ta, ada)
    deadline = time.monotonic() + 30
    while not platform.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [s.body["userId"] for s in platform.received] == ["s-ada"]


def test_a_grade_released_before_the_app_stopped_is_queued_when_it_starts(wb, platform, course):
    ta, ada = course
    # Released, but the app stopped before the score was queued.
    review.release_feedback(wb.store, ada.id, ta.id, grade=GRADE, comment="", item_comments={})
    assert wb.store.lti_scores_for(ada.id) == []
    assert wb.lti.queue_missed_grades() == 1
    assert wb.lti.queue_missed_grades() == 0  # queued once only
    wb.lti.outbox.deliver_due()
    assert [s.body["scoreGiven"] for s in platform.received] == [review.grade_points(GRADE)]


def test_a_redirect_from_the_score_service_is_an_error_not_a_grade_sent(
    wb, platform, course, clock
):
    ta, ada = course
    # A site behind a sign-in (or moved to https) redirects, and the page it redirects to
    # answers 200: followed as a GET, that 200 would have counted as the grade received.
    platform.redirect_scores = f"{platform.base_url}/login/index.php"
    release(wb, ta, ada)
    assert wb.lti.outbox.deliver_due() == 0
    [score] = wb.store.lti_scores_for(ada.id)
    assert score.state == "error"
    assert "redirect (HTTP 302 to " + platform.redirect_scores in score.last_error
    assert platform.received == []
    assert wb.lti.roster(ta).records[0]["moodle"].startswith("Grade not accepted by Moodle")


def test_an_export_through_the_facade_is_recorded_and_tells_moodle_it_is_handed_in(
    wb, platform, course, clock
):
    _, ada = course
    # The submission package only builds: a bundle built there is neither recorded nor sent.
    built = export_for(wb.store, ada.id, model_name=wb.settings.model_name)
    assert wb.store.exports_for(ada.id) == [] and wb.store.lti_scores_for(ada.id) == []

    bundle = wb.export_bundle(ada.id)
    assert bundle.notebook_sha256 == built.notebook_sha256  # the same work, the same notebook
    [record] = wb.store.exports_for(ada.id)
    assert (record.file_name, record.sha256) == (bundle.file_name, bundle.notebook_sha256)
    [score] = wb.store.lti_scores_for(ada.id)
    assert (score.kind, score.state) == ("submitted", "queued")
    assert wb.lti.outbox.deliver_due() == 1
    [received] = platform.received
    assert received.body["userId"] == "s-ada"
    assert (received.body["activityProgress"], received.body["gradingProgress"]) == (
        "Submitted",
        "PendingManual",
    )
    assert "scoreGiven" not in received.body


def second_student(wb, platform, *, sub="s-bob", lineitem=None):
    platform.gradable.setdefault("7", set()).add(sub)
    return launch(
        wb,
        platform,
        sub=sub,
        name=sub[2:].title(),
        role="student",
        lineitem=lineitem or platform.lineitem_url("7"),
    )


def test_a_line_item_that_is_not_a_url_is_an_error_and_the_other_grades_still_go(
    wb, platform, course, clock
):
    ta, ada = course
    # Accepted at launch (it starts with http:// and has no space), unusable as a URL.
    bob = second_student(wb, platform, lineitem="http://[moodle.example/lineitem?type_id=3")
    release(wb, ta, bob)  # queued first: posted first in the round
    release(wb, ta, ada)
    assert wb.lti.outbox.deliver_due() == 1
    assert [s.body["userId"] for s in platform.received] == ["s-ada"]
    [refused] = wb.store.lti_scores_for(bob.id)
    assert refused.state == "error"
    assert "not a usable URL" in refused.last_error


def test_a_fault_while_sending_one_score_keeps_it_queued_and_the_round_goes_on(
    wb, platform, course, clock, monkeypatch
):
    from workbook.lti import outbox as outbox_module

    ta, ada = course
    bob = second_student(wb, platform)
    real_post = outbox_module.post_score

    def faulty(lineitem, token, payload):
        if payload["userId"] == "s-bob":
            raise RuntimeError("a bug of ours")
        return real_post(lineitem, token, payload)

    monkeypatch.setattr(outbox_module, "post_score", faulty)
    release(wb, ta, bob)
    release(wb, ta, ada)
    assert wb.lti.outbox.deliver_due() == 1  # Ada's went, after Bob's failed
    [kept] = wb.store.lti_scores_for(bob.id)
    assert (kept.state, kept.attempts) == ("queued", 1)
    assert "RuntimeError: a bug of ours" in kept.last_error
    assert kept.next_try_at == clock.now + timedelta(seconds=BASE_DELAY_S)

    monkeypatch.setattr(outbox_module, "post_score", real_post)  # the bug fixed
    clock.advance(BASE_DELAY_S)
    assert wb.lti.outbox.deliver_due() == 1
    assert sorted(s.body["userId"] for s in platform.received) == ["s-ada", "s-bob"]


def test_a_grade_released_before_the_student_had_a_line_item_goes_once_they_have_one(
    wb, platform, course
):
    ta, _ = course
    cy = launch(wb, platform, sub="s-cy", name="Cy", role="student")  # no grades in Moodle yet
    platform.gradable["7"].add("s-cy")
    release(wb, ta, cy)
    assert wb.store.lti_scores_for(cy.id) == []  # nowhere to send it
    # Cy opens the activity again, now with grade sync on: a line item, and no restart.
    wb.store.record_lti_launch(
        cy.id, issuer=platform.issuer, deployment_id=platform.deployment_id, context_id="A",
        title="Course A", label="A", role="student", ags_lineitem=platform.lineitem_url("7"),
        ags_scopes=[SCORE_SCOPE],
    )  # fmt: skip
    # A release a page may be queueing right now is left to it (a minute, in the app).
    assert wb.lti.queue_missed_grades(settled_s=60) == 0
    wb.lti.settled_s = 0.0
    wb.lti.outbox.catch_up_s = 0.0  # every round here; five minutes in the app
    wb.lti.outbox.start()
    assert wait_for_scores(platform, 1) == ["s-cy"]
    assert wait_for_states(wb.store, [cy.id]) == [["sent"]]  # queued once
    assert [s.kind for s in wb.store.lti_scores_for(cy.id)] == ["grade"]


def test_scores_url_puts_scores_before_the_query_string():
    assert (
        scores_url("https://m.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1")
        == "https://m.example/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1"
    )
    assert scores_url("https://c.example/lineitems/9/") == "https://c.example/lineitems/9/scores"


# --- the class list ------------------------------------------------------------------------


def test_class_list_lists_enrolled_students_who_never_opened_the_workbook(wb, platform, course):
    ta, ada = course
    platform.members["A"] = [
        {"user_id": "s-ada", "name": "Ada", "email": ada.email, "roles": [LEARNER]},
        {"user_id": "t-tom", "name": "Tom TA", "email": "t-tom@uni.example", "roles": [INSTRUCTOR]},
        {"user_id": "s-zoe", "name": "Zoë Zed", "email": "zoe@uni.example", "roles": [LEARNER]},
        {"user_id": "s-old", "name": "Gone", "email": "old@uni.example", "roles": [LEARNER],
         "status": "Inactive"},
        {"user_id": "s-ben", "given_name": "Ben", "family_name": "Bell", "email": "ben@uni.example",
         "roles": ["Learner"]},
    ]  # fmt: skip
    before = wb.lti.roster(ta)
    assert before.not_started == [] and before.class_list_at is None and before.can_refresh

    done = wb.lti.refresh_class_list(ta)
    assert (done.courses, done.students, done.problems) == (1, 3, [])
    assert platform.nrps_pages == 3  # five members, two per page: every "next" followed
    roster = wb.lti.roster(ta)
    assert roster.not_started == [("Ben Bell", "ben@uni.example"), ("Zoë Zed", "zoe@uni.example")]
    assert [r["name"] for r in roster.records] == ["Ada"]
    assert roster.class_list_at is not None

    # Zoë opens the workbook from Moodle: she leaves the not-started list.
    launch(wb, platform, sub="s-zoe", name="Zoë Zed", role="student")
    assert wb.lti.roster(ta).not_started == [("Ben Bell", "ben@uni.example")]


def test_a_class_list_page_on_another_site_is_not_followed(wb, platform, course):
    ta, _ = course
    platform.members["A"] = [
        {"user_id": f"s-{n}", "name": f"S {n}", "email": f"s{n}@uni.example", "roles": [LEARNER]}
        for n in range(3)
    ]
    platform.next_base = "http://127.0.0.99:9/memberships"  # would receive the bearer token
    done = wb.lti.refresh_class_list(ta)
    assert done.courses == 0
    assert "another site" in done.problems[0]
    assert platform.nrps_pages == 1
    assert wb.lti.roster(ta).not_started == []  # the old (empty) list is kept


def test_an_answer_without_members_keeps_the_class_list_read_before(wb, platform, course):
    ta, _ = course
    platform.members["A"] = [
        {"user_id": "s-zoe", "name": "Zoë Zed", "email": "zoe@uni.example", "roles": [LEARNER]}
    ]
    assert wb.lti.refresh_class_list(ta).students == 1
    platform.members_missing = True  # e.g. a proxy's own JSON answer, status 200
    done = wb.lti.refresh_class_list(ta)
    assert (done.courses, done.students) == (0, 0)
    assert "not a class list" in done.problems[0]
    assert wb.lti.roster(ta).not_started == [("Zoë Zed", "zoe@uni.example")]


def test_a_redirect_from_the_class_list_service_is_a_problem_not_followed(wb, platform, course):
    ta, _ = course
    platform.members["A"] = [
        {"user_id": "s-zoe", "name": "Zoë Zed", "email": "zoe@uni.example", "roles": [LEARNER]}
    ]
    assert wb.lti.refresh_class_list(ta).students == 1
    # A site behind a sign-in (or moved to https): the page it points to answers 200.
    platform.redirect_members = f"{platform.base_url}/login/index.php"
    done = wb.lti.refresh_class_list(ta)
    assert (done.courses, done.students) == (0, 0)
    [problem] = done.problems
    assert problem.startswith("Course A: ")
    assert "redirect (HTTP 302 to " + platform.redirect_members in problem
    assert platform.login_hits == 0  # not followed, so the bearer token went nowhere else
    assert wb.lti.roster(ta).not_started == [("Zoë Zed", "zoe@uni.example")]  # kept


# --- sections kept apart -------------------------------------------------------------------


@pytest.fixture
def two_courses(wb, platform):
    platform.gradable["7"] = {"s-ada"}
    platform.gradable["8"] = {"s-bea"}
    ta_a = launch(wb, platform, sub="t-tom", name="Tom TA", role="ta", context="A")
    ta_b = launch(wb, platform, sub="t-tia", name="Tia TA", role="ta", context="B")
    ada = launch(
        wb, platform, sub="s-ada", name="Ada", role="student", context="A",
        lineitem=platform.lineitem_url("7"),
    )  # fmt: skip
    bea = launch(
        wb, platform, sub="s-bea", name="Bea", role="student", context="B",
        lineitem=platform.lineitem_url("8", type_id=4),
    )  # fmt: skip
    return ta_a, ta_b, ada, bea


def test_a_ta_of_one_context_cannot_see_review_grade_or_export_a_student_of_another(
    wb, platform, two_courses, clock
):
    ta_a, ta_b, ada, bea = two_courses
    assert wb.store.visible_student_ids(ta_a.id) == {ada.id}
    assert [r["name"] for r in wb.lti.roster(ta_a).records] == ["Ada"]
    assert wb.lti.student_review(ta_a, ada.id).student.id == ada.id

    with pytest.raises(review.ReviewError) as outside:
        wb.lti.student_review(ta_a, bea.id)
    with pytest.raises(review.ReviewError) as missing:
        wb.lti.student_review(ta_a, 9999)
    assert str(outside.value) == str(missing.value) == NOT_YOURS  # nothing learned
    with pytest.raises(review.ReviewError, match=re.escape(NOT_YOURS)):
        release(wb, ta_a, bea)
    with pytest.raises(review.ReviewError, match=re.escape(NOT_YOURS)):
        wb.lti.save_feedback_draft(ta_a, bea.id, grade=None, comment="x", item_comments={})
    assert wb.store.feedback_history(bea.id) == []

    release(wb, ta_a, ada)
    release(wb, ta_b, bea)
    assert set(wb.lti.worksheet_grades(ta_a)) == {ada.email}
    assert set(wb.lti.worksheet_grades(ta_b)) == {bea.email}
    responses = wb.lti.responses_csv(ta_a).decode("utf-8-sig")
    assert ada.email in responses and bea.email not in responses

    # Each grade went to its own course's line item only.
    wb.lti.outbox.deliver_due()
    sent = {(s.path.split("/")[-3], s.query, s.body["userId"]) for s in platform.received}
    assert sent == {("7", "type_id=3", "s-ada"), ("8", "type_id=4", "s-bea")}


def test_a_ta_reads_only_their_own_courses_gradebook_and_an_instructor_the_one_to_look_at(
    wb, platform, two_courses, clock
):
    ta_a, ta_b, ada, _ = two_courses
    # Ada is in course B too, where Moodle will not take her grade (not gradable there).
    wb.store.record_lti_launch(
        ada.id, issuer=platform.issuer, deployment_id=platform.deployment_id, context_id="B",
        title="Course B", label="B", role="student", ags_lineitem=platform.lineitem_url("9"),
        ags_scopes=[SCORE_SCOPE], nrps_url=platform.nrps_url("B"),
    )  # fmt: skip
    prof = wb.store.create_user("prof@uni.example", "Prof", "correct horse", role="instructor")
    release(wb, ta_a, ada)  # to both courses' line items
    wb.lti.outbox.deliver_due()
    assert platform.refused == [(400, "s-ada")]

    def moodle(staff):
        row = next(r for r in wb.lti.roster(staff).records if r["user_id"] == ada.id)
        assert row["moodle"] == wb.lti.moodle_status(staff, ada.id)  # roster and review agree
        return row["moodle"]

    assert moodle(ta_a).startswith("Grade sent to Moodle")  # course A's gradebook took it
    assert moodle(ta_b).startswith("Grade not accepted by Moodle")  # course B's did not
    assert moodle(prof).startswith("Grade not accepted by Moodle")  # the one to look at


def test_instructors_and_tas_without_a_launch_see_every_student(wb, platform, two_courses):
    _, _, ada, bea = two_courses
    prof = wb.store.create_user("prof@uni.example", "Prof", "correct horse", role="instructor")
    ta = wb.store.create_user("pat@uni.example", "Pat TA", "correct horse", role="ta")
    local = wb.store.create_user("lou@uni.example", "Lou", "correct horse")
    everyone = {ada.id, bea.id, local.id}
    for staff in (prof, ta):
        assert wb.store.visible_student_ids(staff.id) is None
        assert {r["user_id"] for r in wb.lti.roster(staff).records} == everyone
        assert wb.lti.student_review(staff, bea.id).student.id == bea.id


# --- the command line's export, and the outbox after a restart ------------------------------


def test_an_export_from_the_command_line_tells_the_platform_as_the_page_does(
    wb, platform, course, tmp_path, capsys
):
    from workbook.__main__ import main as cli_main

    ta, ada = course
    platform.gradable["7"].add("s-bea")
    bea = launch(
        wb, platform, sub="s-bea", name="Bea", role="student", lineitem=platform.lineitem_url("7")
    )
    argv = ["--db", str(wb.settings.db_path), "export", "--out", str(tmp_path / "out")]
    assert cli_main([*argv, "--email", ada.email]) == 0  # Ada exports from the command line
    assert "hand-in queued for 1 course(s)" in capsys.readouterr().out
    wb.lti.record_export(bea.id, "bea-logits.zip", "b" * 64)  # Bea from the Submit page

    [from_cli] = wb.store.lti_scores_for(ada.id)
    [from_page] = wb.store.lti_scores_for(bea.id)
    assert wb.store.exports_for(ada.id)[-1].file_name == from_cli_file(tmp_path / "out")

    def without_who_and_when(score):
        return {k: v for k, v in score.payload.items() if k not in ("userId", "timestamp")}

    assert (from_cli.kind, from_cli.lineitem) == (from_page.kind, from_page.lineitem)
    assert without_who_and_when(from_cli) == without_who_and_when(from_page)

    assert wb.lti.outbox.deliver_due() == 2
    by_user = {s.body["userId"]: s.body for s in platform.received}
    assert set(by_user) == {"s-ada", "s-bea"}
    assert (by_user["s-ada"]["activityProgress"], by_user["s-ada"]["gradingProgress"]) == (
        "Submitted",
        "PendingManual",
    )
    moodle = {r["name"]: r["moodle"] for r in wb.lti.roster(ta).records}
    assert moodle["Ada"].startswith("Hand-in sent to Moodle")

    # Once graded, a command-line export leaves the grade alone, as the page does.
    release(wb, ta, ada)
    assert cli_main([*argv, "--email", ada.email]) == 0
    assert "Moodle" not in capsys.readouterr().out
    assert [s.kind for s in wb.store.lti_scores_for(ada.id)] == ["submitted", "grade"]
    assert len(wb.store.exports_for(ada.id)) == 2


def from_cli_file(folder):
    [zipped] = folder.glob("*.zip")
    return zipped.name


def earlier_run_left_scores(wb, platform, course):
    """Ada's grade queued but not sent, Bob's released but not queued: then the app stopped."""
    ta, ada = course
    platform.gradable["7"].add("s-bob")
    bob = launch(
        wb, platform, sub="s-bob", name="Bob", role="student", lineitem=platform.lineitem_url("7")
    )
    release(wb, ta, ada)  # queued; this run's outbox never posts (autostart off)
    review.release_feedback(wb.store, bob.id, ta.id, grade=GRADE, comment="", item_comments={})
    assert [s.state for s in wb.store.lti_scores_for(ada.id)] == ["queued"]
    assert wb.store.lti_scores_for(bob.id) == []
    return ada, bob


def wait_for_scores(platform, count, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while len(platform.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(s.body["userId"] for s in platform.received)


def wait_for_states(store, user_ids, timeout_s=30.0):
    def states():
        return [[s.state for s in store.lti_scores_for(uid)] for uid in user_ids]

    deadline = time.monotonic() + timeout_s
    while any("queued" in each for each in states()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return states()


def test_scores_left_by_an_earlier_run_are_sent_when_the_app_starts_without_preload(
    wb, platform, course
):
    ada, bob = earlier_run_left_scores(wb, platform, course)
    later = Workbook(wb.settings)  # the app started again, WORKBOOK_PRELOAD=0
    assert later.settings.preload is False
    later.preload()  # does nothing with preload off ...
    assert platform.received == []
    try:
        later.start_services()  # ... but the server's start-up starts the outbox
        later.start_services()  # preload's call as well: one catch-up only
        assert wait_for_scores(platform, 2) == ["s-ada", "s-bob"]
        # Marked sent once the platform's answer is back (a moment after it took them).
        assert wait_for_states(later.store, [ada.id, bob.id]) == [["sent"], ["sent"]]
    finally:
        later.lti.outbox.stop()
        later.store.close()


def test_the_pages_and_the_server_start_up_share_one_workbook(wb):
    assert Workbook.shared(wb.settings) is Workbook.shared(wb.settings)
    assert Workbook.shared(wb.settings) is not wb  # only what shared() made is shared


@pytest.mark.slow
def test_the_server_posts_what_an_earlier_run_left_queued_without_a_page_view(wb, platform, course):
    from e2e.harness import start_app, stop_app

    earlier_run_left_scores(wb, platform, course)
    # The real server (serve.py) on the same database and key file, preload off, and no
    # browser: nothing but its start-up can post these.
    app = start_app(wb.settings.db_path.parent, {"WORKBOOK_PRELOAD": "0"})
    try:
        assert wait_for_scores(platform, 2) == ["s-ada", "s-bob"]
    finally:
        stop_app(app.process)
