"""LTI 1.3 launches against the tool's routes, signed by a platform built on lti1p3platform.

The platform (``tests/lti_platform.py``) serves its key set over HTTP on 127.0.0.2, so the
tool fetches and caches real keys; the tool's routes run under Starlette's test client, one
client per browser. Every refusal the issue lists has its own test; each checks the plain
page, that nothing of the token is echoed, and the operator's log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest
from lti_platform import (
    CLIENT_ID,
    STUDENT,
    TEACHER,
    LaunchSpec,
    LocalPlatform,
    private_key_pem,
    query_of,
)
from lti_support import TOOL_BASE, Tool

from workbook import Settings, Workbook
from workbook.lti import tool_keys, workbook_role
from workbook.web import SESSION_COOKIE

AGS = "http://127.0.0.2/mod/lti/services.php/2/lineitems/7/lineitem?type_id=1"
NRPS = "http://127.0.0.2/mod/lti/services.php/CourseSection/2/bindings/1/memberships"


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    local = LocalPlatform()
    with local.serving():
        local.register_tool(TOOL_BASE)
        yield local


@pytest.fixture
def tool(platform, tmp_path) -> Iterator[Tool]:
    opened = Tool.open(platform, tmp_path)
    yield opened
    opened.close()


def session_user(tool: Tool, response):
    """The user the response's session cookie signs in (checks the cookie's attributes)."""
    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    token = header.split(";")[0].split("=", 1)[1]
    return tool.store.session_user(token, idle_seconds=60)


def assert_refused(response, code: str, caplog, form: dict[str, str] | None = None) -> None:
    """A plain refusal page naming ``code``, logged with the page's reference."""
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert f"({code})" in page and "tell your instructor" in page.lower()
    reference = re.search(r"Reference: <strong>([0-9a-f]{8})</strong>", page).group(1)
    logged = [r.getMessage() for r in caplog.records if r.name == "workbook.lti"]
    assert any(f"[{code}] ref {reference}" in line for line in logged), logged
    for value in (form or {}).values():
        assert value not in page  # nothing of the token (or state) is echoed
        for part in value.split("."):
            assert len(part) < 16 or part not in page
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


# --- launches that sign in --------------------------------------------------------------


def test_a_student_launch_signs_in_on_home_with_the_session_cookie(tool):
    browser = tool.browser()
    spec = LaunchSpec(user=STUDENT, ags_lineitem=AGS, nrps_url=NRPS)
    launched, _ = tool.launch(browser, spec)
    assert launched.status_code == 200
    assert "Continue to the workbook" in launched.text
    entered = tool.enter(browser, launched)
    assert entered.status_code == 303 and entered.headers["location"] == "/"
    user = session_user(tool, entered)
    assert (user.name, user.email, user.role) == (STUDENT.name, STUDENT.email, "student")
    assert tool.store.lti_user(tool.platform.issuer, STUDENT.sub) == user
    [membership] = tool.store.lti_memberships(user.id)
    assert (membership.role, membership.ags_lineitem, membership.nrps_url) == ("student", AGS, NRPS)
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in membership.ags_scopes
    assert tool.store.lti_context(membership.context_pk).title == "NLP 101"
    # The one-time code is spent: posting it again signs nobody in.
    again = browser.post("/lti/enter", data={"code": "x" * 20, "target": "/"})
    assert again.status_code == 403


def test_a_teacher_launch_makes_a_ta_and_lands_on_the_deep_linked_page(tool):
    browser = tool.browser()
    spec = LaunchSpec(user=TEACHER, target=f"{TOOL_BASE}/review?tab=roster")
    launched, _ = tool.launch(browser, spec)
    entered = tool.enter(browser, launched)
    assert entered.headers["location"] == "/review?tab=roster"
    user = session_user(tool, entered)
    assert (user.role, user.name) == ("ta", TEACHER.name)


def test_name_and_email_follow_the_latest_launch(tool):
    browser = tool.browser()
    tool.enter(browser, tool.launch(browser, LaunchSpec(user=STUDENT))[0])
    renamed = STUDENT.__class__(
        STUDENT.sub, "Stella Renamed", "stella.r@example.org", STUDENT.roles
    )
    entered = tool.enter(browser, tool.launch(browser, LaunchSpec(user=renamed))[0])
    user = session_user(tool, entered)
    assert (user.name, user.email) == ("Stella Renamed", "stella.r@example.org")
    assert tool.store.lti_user(tool.platform.issuer, STUDENT.sub).id == user.id


def test_an_email_of_a_password_account_links_only_after_a_password_sign_in(tool):
    owner = tool.store.create_user(STUDENT.email, "Stella P", "a long password 1")
    browser = tool.browser()
    launched, _ = tool.launch(browser, LaunchSpec(user=STUDENT))
    assert launched.status_code == 200 and "Confirm your workbook account" in launched.text
    assert SESSION_COOKIE not in launched.headers.get("set-cookie", "")
    assert tool.store.lti_memberships(owner.id) == []
    workbook = Workbook(tool.settings)
    try:
        workbook.sign_in(STUDENT.email, "a long password 1")  # the owner proves the account
    finally:
        workbook.store.close()
    entered = tool.enter(browser, tool.launch(browser, LaunchSpec(user=STUDENT))[0])
    assert session_user(tool, entered).id == owner.id


def test_a_launch_whose_email_matches_never_links_without_the_password(tool):
    owner = tool.store.create_user(STUDENT.email, "Stella P", "a long password 1")
    browser = tool.browser()
    for _ in range(2):
        launched, _ = tool.launch(browser, LaunchSpec(user=STUDENT))
        assert "Confirm your workbook account" in launched.text
    with pytest.raises(Exception, match="no account is linked"):
        tool.store.lti_user(tool.platform.issuer, STUDENT.sub)
    assert tool.store.user(owner.id).name == "Stella P"


def test_an_email_held_by_another_launch_only_account_is_refused(tool, caplog):
    tool.store.create_lti_user(
        issuer=tool.platform.issuer,
        sub="someone-else",
        email=STUDENT.email,
        name="X",
        role="student",
    )
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT))
    assert_refused(launched, "email-taken", caplog, form)


def test_keys_are_cached_and_a_new_platform_key_is_fetched_once(tool, platform):
    before = platform.keyset_fetches
    for _ in range(2):
        browser = tool.browser()
        assert tool.launch(browser, LaunchSpec(user=STUDENT))[0].status_code == 200
    assert platform.keyset_fetches == before + 1
    old = platform.private_pem
    platform.rotate_key()
    try:
        assert tool.launch(tool.browser(), LaunchSpec(user=STUDENT))[0].status_code == 200
        assert platform.keyset_fetches == before + 2
    finally:
        platform.private_pem = old


def test_workbook_roles_from_lti_roles():
    lis = "http://purl.imsglobal.org/vocab/lis/v2/membership"
    assert workbook_role((f"{lis}#Learner",)) == "student"
    assert workbook_role((f"{lis}#Instructor",)) == "ta"
    assert workbook_role((f"{lis}/Instructor#TeachingAssistant",)) == "ta"
    assert workbook_role((f"{lis}#Learner", f"{lis}#Instructor")) == "ta"
    admin = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
    assert workbook_role((admin,)) is None  # never an instructor from the platform


# --- refusals, one test each ------------------------------------------------------------


def test_a_replayed_id_token_is_refused(tool, caplog):
    browser = tool.browser()
    first, form = tool.launch(browser, LaunchSpec(user=STUDENT))
    assert first.status_code == 200
    replayed = browser.post("/lti/launch", data=form)
    assert_refused(replayed, "replayed", caplog, form)


def test_a_token_for_another_audience_is_refused(tool, caplog):
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), client_id="other")
    assert_refused(launched, "wrong-audience", caplog, form)


def test_an_expired_token_is_refused(tool, caplog):
    # Expired by more than the allowed clock skew.
    expires_in = -(tool.settings.lti_clock_skew_s + 5)
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), expires_in=expires_in)
    assert_refused(launched, "expired", caplog, form)


def test_a_token_within_the_clock_skew_is_accepted(tool):
    expires_in = -(tool.settings.lti_clock_skew_s - 10)
    launched, _ = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), expires_in=expires_in)
    assert launched.status_code == 200


def test_an_unknown_deployment_is_refused(tool, caplog):
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), deployment_id="9")
    assert_refused(launched, "unknown-deployment", caplog, form)


def test_a_tampered_signature_is_refused(tool, caplog):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    head, body, signature = form["id_token"].split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    tampered = {**form, "id_token": f"{head}.{body}.{flipped}"}
    assert_refused(browser.post("/lti/launch", data=tampered), "bad-signature", caplog, tampered)


def test_tampered_claims_are_refused(tool, caplog):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    head, _, signature = form["id_token"].split(".")
    claims = jwt.decode(form["id_token"], options={"verify_signature": False})
    forged = jwt.utils.base64url_encode(
        jwt.api_jwt.json.dumps({**claims, "sub": TEACHER.sub}).encode()
    ).decode()
    tampered = {**form, "id_token": f"{head}.{forged}.{signature}"}
    assert_refused(browser.post("/lti/launch", data=tampered), "bad-signature", caplog, tampered)


def test_a_token_issued_in_the_future_is_refused(tool, platform, caplog):
    browser = tool.browser()
    spec = LaunchSpec(user=STUDENT)
    good = platform.answer(tool.login(browser, spec), spec)
    claims = jwt.decode(good["id_token"], options={"verify_signature": False})
    # The library always stamps iat now, so this one is signed with PyJWT, with the same key.
    later = claims["iat"] + tool.settings.lti_clock_skew_s + 120
    kid = jwt.get_unverified_header(good["id_token"])["kid"]
    token = jwt.encode(
        {**claims, "iat": later, "exp": later + 300}, platform.private_pem, "RS256", {"kid": kid}
    )
    form = {**good, "id_token": token}
    assert_refused(browser.post("/lti/launch", data=form), "not-yet-valid", caplog, form)


def test_several_audiences_need_azp_to_be_our_client_id(tool, caplog):
    several = {"aud": [CLIENT_ID, "another-tool"]}
    spec = LaunchSpec(user=STUDENT, extra_claims={**several, "azp": CLIENT_ID})
    assert tool.launch(tool.browser(), spec)[0].status_code == 200
    spec = LaunchSpec(user=STUDENT, extra_claims={**several, "azp": "another-tool"})
    launched, form = tool.launch(tool.browser(), spec)
    assert_refused(launched, "wrong-azp", caplog, form)


def test_a_token_answering_another_login_is_refused(tool, caplog):
    browser = tool.browser()
    spec = LaunchSpec(user=STUDENT)
    first = tool.platform.answer(tool.login(browser, spec), spec)
    second = tool.login(browser, spec)
    swapped = {**first, "state": second["state"]}  # the token carries the first login's nonce
    assert_refused(browser.post("/lti/launch", data=swapped), "wrong-nonce", caplog, swapped)


def test_a_launch_without_state_is_refused(tool, caplog):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    response = browser.post("/lti/launch", data={"id_token": form["id_token"]})
    assert_refused(response, "missing-state", caplog, form)


def test_a_state_we_never_issued_is_refused(tool, caplog):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    forged = {**form, "state": "s" * 43}
    assert_refused(browser.post("/lti/launch", data=forged), "unknown-state", caplog, forged)


def test_a_state_issued_to_another_browser_is_refused(tool, caplog):
    victim, attacker = tool.browser(), tool.browser()
    tool.login(attacker, LaunchSpec(user=TEACHER))  # the attacker's browser has its own cookie
    form = tool.platform.answer(
        tool.login(victim, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    response = attacker.post("/lti/launch", data=form)
    assert_refused(response, "foreign-state", caplog, form)


def test_an_unknown_kid_whose_refetch_fails_is_refused(tool, platform, caplog):
    assert tool.launch(tool.browser(), LaunchSpec(user=STUDENT))[0].status_code == 200
    before = platform.keyset_fetches
    platform.keyset_status = 503
    try:
        stranger = private_key_pem()
        launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), key=stranger)
    finally:
        platform.keyset_status = 200
    assert platform.keyset_fetches == before + 1  # refetched once, and that failed
    assert_refused(launched, "unknown-key", caplog, form)


def test_an_unknown_kid_missing_after_the_refetch_is_refused(tool, platform, caplog):
    before = platform.keyset_fetches
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=STUDENT), key=private_key_pem())
    assert platform.keyset_fetches == before + 2  # the first fetch, then one refetch
    assert_refused(launched, "unknown-key", caplog, form)


def test_a_launch_for_no_known_role_is_refused(tool, caplog):
    guest = STUDENT.__class__("guest-1", "Guest", "guest@example.org", ("urn:guest",))
    launched, form = tool.launch(tool.browser(), LaunchSpec(user=guest))
    assert_refused(launched, "unknown-role", caplog, form)


def test_a_deep_linking_request_is_refused_with_what_to_tell_the_instructor(tool, caplog):
    claim = "https://purl.imsglobal.org/spec/lti/claim/message_type"
    spec = LaunchSpec(user=TEACHER, extra_claims={claim: "LtiDeepLinkingRequest"})
    launched, form = tool.launch(tool.browser(), spec)
    assert_refused(launched, "wrong-message-type", caplog, form)
    assert "only plain links work" in launched.text


def test_a_login_from_an_unregistered_issuer_is_refused(tool, caplog):
    url = tool.platform.login_url(LaunchSpec(user=STUDENT)).replace(
        "iss=http%3A%2F%2F127.0.0.2", "iss=http%3A%2F%2F127.0.0.9"
    )
    response = tool.browser().get(url)
    assert_refused(response, "unknown-platform", caplog)
    assert "register" in response.text


def test_a_login_targeting_another_site_is_refused(tool, caplog):
    spec = LaunchSpec(user=STUDENT, target="https://evil.example.org/")
    assert_refused(tool.browser().get(tool.platform.login_url(spec)), "foreign-target", caplog)


def test_an_archived_account_is_refused(tool, caplog):
    browser = tool.browser()
    user = session_user(
        tool, tool.enter(browser, tool.launch(browser, LaunchSpec(user=STUDENT))[0])
    )
    tool.store.archive_user(user.id)
    launched, form = tool.launch(browser, LaunchSpec(user=STUDENT))
    assert_refused(launched, "archived-account", caplog, form)


# --- frames, key set and configuration -------------------------------------------------


def test_a_framed_login_offers_a_new_window_and_starts_nothing(tool):
    url = tool.platform.login_url(LaunchSpec(user=STUDENT))
    response = tool.browser().get(url, headers={"Sec-Fetch-Dest": "iframe"})
    assert response.status_code == 200
    assert 'target="_blank"' in response.text and "Open in a new window" in response.text
    link = re.search(r'href="([^"]+)" target="_blank"', response.text).group(1)
    assert query_of(link.replace("&amp;", "&")) == query_of(url)
    assert link.startswith(f"{TOOL_BASE}/lti/login?")
    assert "frame-ancestors *" in response.headers["content-security-policy"]
    assert "set-cookie" not in response.headers


def test_a_launch_whose_cookie_was_blocked_offers_a_new_window(tool):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    browser.cookies.clear()  # what a browser does with third-party cookies in a frame
    response = browser.post("/lti/launch", data=form)
    assert response.status_code == 403
    assert "Open in a new window" in response.text
    assert "/lti/login?" in response.text and form["id_token"] not in response.text


def test_a_launch_posted_inside_a_frame_offers_a_new_window_even_with_cookies(tool):
    browser = tool.browser()
    form = tool.platform.answer(
        tool.login(browser, LaunchSpec(user=STUDENT)), LaunchSpec(user=STUDENT)
    )
    response = browser.post("/lti/launch", data=form, headers={"Sec-Fetch-Dest": "iframe"})
    assert response.status_code == 403 and "Open in a new window" in response.text
    assert "Continue to the workbook" not in response.text


def test_a_login_posted_as_a_form_is_accepted(tool):
    login = query_of(tool.platform.login_url(LaunchSpec(user=STUDENT)))
    response = tool.browser().post("/lti/login", data=login)
    assert response.status_code == 302
    assert response.headers["location"].startswith(tool.platform.auth_url)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=none" in cookie and "Secure" in cookie


def test_the_key_set_verifies_what_the_tool_signs_and_keeps_a_rotated_key(tool):
    browser = tool.browser()
    keys = tool_keys(tool.store)
    current = keys.current()
    token = jwt.encode({"iss": CLIENT_ID}, current.private_pem, "RS256", {"kid": current.kid})
    published = jwt.PyJWKSet.from_dict(browser.get("/lti/jwks").json())
    assert jwt.decode(token, published[current.kid].key, algorithms=["RS256"])["iss"] == CLIENT_ID
    keys.rotate(timedelta(hours=1))
    kids = [k["kid"] for k in browser.get("/lti/jwks").json()["keys"]]
    assert kids == [current.kid, keys.current().kid]


def test_the_config_lists_every_url_a_moodle_admin_pastes(tool, platform, tmp_path):
    config = tool.browser().get("/lti/config").json()
    assert config["initiate_login_url"] == f"{TOOL_BASE}/lti/login"
    assert config["redirection_uris"] == [f"{TOOL_BASE}/lti/launch"]
    assert config["public_keyset_url"] == f"{TOOL_BASE}/lti/jwks"
    assert config["tool_url"] == f"{TOOL_BASE}/"
    public = Tool.open(platform, tmp_path / "public", public_url="https://wb.example.org/hw")
    try:
        config = public.browser().get("/lti/config").json()
        assert config["initiate_login_url"] == "https://wb.example.org/hw/lti/login"
    finally:
        public.close()


def test_the_public_url_and_skew_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"WORKBOOK_PUBLIC_URL": "https://wb.example.org/", "WORKBOOK_LTI_CLOCK_SKEW_S": "5"}
    )
    assert (settings.public_url, settings.lti_clock_skew_s) == ("https://wb.example.org", 5)
    with pytest.raises(ValueError, match="WORKBOOK_PUBLIC_URL"):
        Settings.from_env({"WORKBOOK_PUBLIC_URL": "wb.example.org"})


@pytest.fixture(autouse=True)
def _capture_lti_log(caplog):
    caplog.set_level(logging.INFO, logger="workbook.lti")


def test_the_platform_grants_a_token_to_an_assertion_signed_with_the_tool_key(tool, platform):
    # What the grade service does: the tool's current key signs, the library verifies it.
    import time

    import httpx2

    key = tool_keys(tool.store).current()
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "aud": platform.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": f"t{now}",
        },
        key.private_pem,
        "RS256",
        {"kid": key.kid},
    )
    scope = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": scope,
    }
    platform.tool_key_set = tool.browser().get("/lti/jwks").json()
    try:
        granted = httpx2.post(platform.token_url, data=form, timeout=10)
        stranger = jwt.encode({"iss": CLIENT_ID}, private_key_pem(), "RS256", {"kid": key.kid})
        refused = httpx2.post(platform.token_url, data={**form, "client_assertion": stranger})
    finally:
        platform.tool_key_set = None
    assert granted.status_code == 200 and granted.json()["scope"] == scope
    assert granted.json()["access_token"] == platform.access_tokens[-1]
    assert refused.status_code == 400
    from starlette.requests import Request

    def bearer(token: str) -> Request:
        return Request(
            {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
        )

    assert platform.authorized(bearer(granted.json()["access_token"]), scope)
    assert not platform.authorized(bearer(granted.json()["access_token"]), "another-scope")
    assert not platform.authorized(bearer(stranger), scope)
