"""Grades and class list after real launches: lti-core's launch platform (its token endpoint
too) and this branch's score and NRPS endpoints on one platform (``lti1p3platform`` underneath
both), the tool's launch routes driven by a test client per browser.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lti_platform import CLIENT_ID, INSTRUCTOR, LEARNER, LaunchSpec, LocalPlatform, PlatformUser
from lti_services_platform import ServicePlatform
from lti_support import Tool

from workbook import Workbook, review
from workbook.lti import LtiServices

STUDENT = PlatformUser("moodle-41", "Sam Student", "sam@example.org", (LEARNER,))
OTHER = PlatformUser("moodle-42", "Olga Other", "olga@example.org", (LEARNER,))
TEACHER = PlatformUser("moodle-3", "Tara Teacher", "tara@example.org", (INSTRUCTOR,))


@pytest.fixture(scope="module")
def moodle() -> Iterator[tuple[LocalPlatform, ServicePlatform]]:
    platform = LocalPlatform(host="127.0.0.11")
    services = ServicePlatform(client_id=CLIENT_ID, token_path="/token")
    # lti-core's /token issues the tokens (lti1p3platform checks the tool's assertion against
    # the tool's key set); the score and NRPS endpoints accept them.
    for path, endpoint, methods in services.routes(None, authorized=platform.authorized):
        platform.add_route(path, endpoint, methods=methods)
    with platform.serving():
        platform.register_tool("https://testserver")
        services.base_url = services.issuer = platform.issuer
        yield platform, services


@pytest.fixture
def tool(moodle, tmp_path):
    platform, services = moodle
    services.received.clear()
    opened = Tool.open(platform, tmp_path)
    platform.tool_key_set = opened.store.lti_tool_keys().jwks()  # what its /lti/jwks serves
    book = Workbook(opened.settings)
    book.lti = LtiServices(book, autostart=False)
    yield opened, book, services
    book.store.close()
    opened.close()


def launched(tool: Tool, spec: LaunchSpec):
    browser = tool.browser()
    answer, _ = tool.launch(browser, spec)
    assert answer.status_code == 200, answer.text
    assert tool.enter(browser, answer).status_code == 303
    return tool.store.lti_user(tool.platform.issuer, spec.user.sub)


def test_a_launched_students_grade_reaches_the_line_item_of_their_launch(tool):
    opened, book, services = tool
    services.gradable["7"] = {STUDENT.sub}
    lineitem = services.lineitem_url("7", type_id=12)
    student = launched(opened, LaunchSpec(user=STUDENT, ags_lineitem=lineitem))
    ta = launched(opened, LaunchSpec(user=TEACHER))
    book.lti.release_feedback(ta, student.id, grade="Excellent", comment="", item_comments={})
    assert book.lti.outbox.deliver_due() == 1
    [score] = services.received
    assert (score.query, score.body["userId"]) == ("type_id=12", STUDENT.sub)
    assert score.body["scoreGiven"] == review.grade_points("Excellent")


def test_launches_from_two_courses_keep_their_tas_apart_and_list_who_never_came(tool):
    opened, book, services = tool
    nrps = services.nrps_url("course-101")
    services.members["course-101"] = [
        {"user_id": STUDENT.sub, "name": STUDENT.name, "email": STUDENT.email, "roles": [LEARNER]},
        {"user_id": "moodle-99", "name": "Nina Never", "email": "nina@example.org",
         "roles": [LEARNER]},
    ]  # fmt: skip
    ours = launched(opened, LaunchSpec(user=STUDENT, nrps_url=nrps))
    theirs = launched(opened, LaunchSpec(user=OTHER, context_id="course-202"))
    ta = launched(opened, LaunchSpec(user=TEACHER, nrps_url=nrps))
    assert book.store.visible_student_ids(ta.id) == {ours.id}
    with pytest.raises(review.ReviewError):
        book.lti.student_review(ta, theirs.id)
    book.lti.refresh_class_list(ta)
    roster = book.lti.roster(ta)
    assert [r["email"] for r in roster.records] == [STUDENT.email]
    assert roster.not_started == [("Nina Never", "nina@example.org")]
