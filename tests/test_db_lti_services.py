"""The score outbox and class-list tables of ``Store`` (``db/lti_services.py``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from db_fixtures import make_student, make_ta

from db import NotFoundError, ValidationError

ISSUER = "https://moodle.example.org"
LINEITEM = "https://moodle.example.org/mod/lti/services.php/2/lineitems/7/lineitem?type_id=1"
NOON = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def course(store):
    store.add_lti_platform(
        issuer=ISSUER,
        client_id="tool",
        deployment_id="1",
        auth_url=f"{ISSUER}/auth",
        token_url=f"{ISSUER}/token",
        keyset_url=f"{ISSUER}/certs",
    )
    student = make_student(store)
    context = store.record_lti_launch(
        student.id, issuer=ISSUER, deployment_id="1", context_id="c1", title="", label="",
        role="student", ags_lineitem=LINEITEM,
    )  # fmt: skip
    return student, context.id


def test_timestamps_of_one_line_item_always_increase_by_at_least_a_second(store, course):
    student, context = course
    first = store.queue_lti_score(student.id, context, LINEITEM, {"userId": "u"}, now=NOON)
    # Same moment, then a clock that went back: still newer than the one before.
    second = store.queue_lti_score(student.id, context, LINEITEM, {"userId": "u"}, now=NOON)
    third = store.queue_lti_score(
        student.id, context, LINEITEM, {"userId": "u"}, now=NOON - timedelta(minutes=5)
    )
    assert first.timestamp == NOON.replace(microsecond=250_000)
    assert second.timestamp == first.timestamp + timedelta(seconds=1)
    assert third.timestamp == second.timestamp + timedelta(seconds=1)
    assert datetime.fromisoformat(third.payload["timestamp"]) == third.timestamp
    # Only the newest still waits: the older ones would be refused after it anyway.
    assert [s.state for s in store.lti_scores_for(student.id)] == [
        "superseded",
        "superseded",
        "queued",
    ]
    assert [s.id for s in store.due_lti_scores(NOON)] == [third.id]


def test_queueing_from_many_threads_gives_distinct_increasing_timestamps(store, course):
    student, context = course

    def queue() -> None:
        store.queue_lti_score(student.id, context, LINEITEM, {"userId": "u"}, now=NOON)

    threads = [threading.Thread(target=queue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps = [s.timestamp for s in store.lti_scores_for(student.id)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 8


def test_a_restamped_score_is_newer_than_every_score_of_its_line_item(store, course):
    student, context = course
    score = store.queue_lti_score(student.id, context, LINEITEM, {"userId": "u"}, now=NOON)
    again = store.restamp_lti_score(score.id, now=NOON)
    assert again.timestamp == score.timestamp + timedelta(seconds=1)
    assert again.payload["timestamp"] != score.payload["timestamp"]


def test_retry_sent_and_refused_are_kept_with_the_platform_to_ask(store, course):
    student, context = course
    score = store.queue_lti_score(student.id, context, LINEITEM, {"userId": "u"}, now=NOON)
    assert (score.token_url, score.client_id) == (f"{ISSUER}/token", "tool")
    store.lti_score_retry(score.id, "HTTP 503", NOON + timedelta(seconds=30))
    assert store.due_lti_scores(NOON) == []
    assert store.next_lti_score_due() == NOON + timedelta(seconds=30)
    [due] = store.due_lti_scores(NOON + timedelta(seconds=30))
    assert (due.attempts, due.last_error) == (1, "HTTP 503")
    store.lti_score_sent(score.id, now=NOON + timedelta(minutes=1))
    status = store.lti_score_status()[student.id]
    assert (status.state, status.sent_at, status.last_error) == (
        "sent",
        NOON + timedelta(minutes=1),
        None,
    )
    assert store.next_lti_score_due() is None
    with pytest.raises(NotFoundError):
        store.lti_score_refused(9999, "no such score")


def test_bad_kinds_and_line_items_are_refused(store, course):
    student, context = course
    with pytest.raises(ValidationError):
        store.queue_lti_score(student.id, context, LINEITEM, {}, kind="bonus")
    with pytest.raises(ValidationError):
        store.queue_lti_score(student.id, context, "", {})


def test_score_targets_need_a_line_item_and_the_students_identity(store, course):
    student, context = course
    assert store.lti_score_targets(student.id) == []  # no (issuer, sub) identity yet
    lti_student = store.create_lti_user(
        issuer=ISSUER, sub="s-1", email="s1@uni.example", name="S One", role="student"
    )
    store.record_lti_launch(
        lti_student.id, issuer=ISSUER, deployment_id="1", context_id="c1", title="", label="",
        role="student", ags_lineitem=LINEITEM,
    )  # fmt: skip
    [target] = store.lti_score_targets(lti_student.id)
    assert (target.context_pk, target.lineitem, target.sub) == (context, LINEITEM, "s-1")


def test_visible_student_ids_follow_the_tas_contexts(store, course):
    student, context = course
    ta = make_ta(store)
    assert store.visible_student_ids(ta.id) is None  # never launched as a TA: all students
    store.record_lti_launch(
        ta.id, issuer=ISSUER, deployment_id="1", context_id="c2", title="", label="", role="ta"
    )
    assert store.visible_student_ids(ta.id) == set()  # a course with no students yet
    store.record_lti_launch(
        ta.id, issuer=ISSUER, deployment_id="1", context_id="c1", title="", label="", role="ta"
    )
    assert store.visible_student_ids(ta.id) == {student.id}
    assert store.visible_student_ids(student.id) == set()  # not staff
    with pytest.raises(NotFoundError):
        store.visible_student_ids(9999)


def test_a_refreshed_class_list_replaces_the_old_one(store, course):
    _, context = course
    store.replace_lti_roster(context, [("a", "Ann", "ann@uni.example", ["Learner"])])
    store.replace_lti_roster(
        context,
        [("b", "Bo", "bo@uni.example", ["Learner"]), ("c", "Cy" * 200, "", ["Learner"])],
    )
    listed = store.lti_not_started([context])
    assert [m.sub for m in listed] == ["b", "c"]
    assert len(listed[1].name) == 200  # the platform's text is cut, not refused
    # A member who already has an account by email has opened the workbook.
    store.create_user("bo@uni.example", "Bo", "correct horse battery")
    assert [m.sub for m in store.lti_not_started([context])] == ["c"]


def test_a_grade_queued_within_the_millisecond_of_its_release_is_not_queued_again(store, course):
    student, context = course
    ta = make_ta(store)
    released = store.save_feedback(student.id, ta.id, grade=3, released=True)
    assert store.lti_unqueued_releases() == [student.id]  # released, nothing queued yet
    # Queued right after the release, within the same millisecond (a fast machine): the
    # score's own timestamp keeps milliseconds only, but that must not make the release
    # look newer than its score, or every start of the app would send the grade again.
    floor_ms = released.created_at.replace(
        microsecond=released.created_at.microsecond // 1000 * 1000
    )
    store.queue_lti_score(
        student.id, context, LINEITEM, {"userId": "u"}, now=floor_ms + timedelta(microseconds=999)
    )
    assert store.lti_unqueued_releases() == []
