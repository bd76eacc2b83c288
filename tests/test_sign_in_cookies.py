"""The HttpOnly sign-in cookies: one-time codes and the route that trades them for cookies.

The browser-level proof (the cookie is set, is HttpOnly and page script cannot read it) is
in ``tests/e2e/test_student_output_isolation.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from starlette.requests import Request

from workbook.web.sign_in_cookies import (
    COOKIE_ROUTE,
    HANDOFF,
    MAX_CODE_CHARS,
    Cookie,
    CookieHandoff,
    is_token,
    set_sign_in_cookies,
)


def _post(body: bytes, headers: dict[str, str] | None = None, scheme: str = "http"):
    """Call the route as the ASGI server would, with ``body`` as the request body."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": COOKIE_ROUTE,
        "scheme": scheme,
        "server": ("127.0.0.1", 8501),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return asyncio.run(set_sign_in_cookies(Request(scope, receive)))


def test_a_code_sets_httponly_strict_cookies_once():
    code = HANDOFF.offer([Cookie("lmwb_session", "tok_EN-1", 7200), Cookie("b", "x", 60)])
    response = _post(code.encode())
    assert response.status_code == 204
    assert response.headers.getlist("set-cookie") == [
        "lmwb_session=tok_EN-1; Path=/; Max-Age=7200; HttpOnly; SameSite=Strict",
        "b=x; Path=/; Max-Age=60; HttpOnly; SameSite=Strict",
    ]
    assert response.headers["cache-control"] == "no-store"
    # Used once: a replay sets nothing.
    assert _post(code.encode()).status_code == 404


@pytest.mark.parametrize(
    ("headers", "scheme"), [({"X-Forwarded-Proto": "https"}, "http"), ({}, "https")]
)
def test_cookies_are_secure_when_the_browser_used_https(headers, scheme):
    code = HANDOFF.offer([Cookie("lmwb_session", "tok", 60)])
    response = _post(code.encode(), headers, scheme)
    assert response.headers["set-cookie"].endswith("; HttpOnly; SameSite=Strict; Secure")


def test_unknown_expired_or_oversized_codes_set_nothing():
    assert _post(b"made-up").status_code == 404
    assert _post(b"x" * (MAX_CODE_CHARS + 1)).status_code == 413
    handoff = CookieHandoff(ttl_s=0.05)
    code = handoff.offer([Cookie("lmwb_session", "tok", 60)])
    time.sleep(0.1)
    assert handoff.take(code) == ()


def test_a_cookie_value_that_could_break_the_header_is_refused():
    with pytest.raises(ValueError, match="characters a token never has"):
        HANDOFF.offer([Cookie("lmwb_session", "tok; Domain=evil.example", 60)])


def test_a_cookie_value_with_non_ascii_letters_is_refused():
    # str.isalnum() says yes to "é" and "٣"; a token never has them.
    for value in ("a" * 30 + "é", "tok٣"):
        with pytest.raises(ValueError, match="characters a token never has"):
            HANDOFF.offer([Cookie("lmwb_browser", value, 60)])


def test_a_token_is_ascii_letters_digits_dash_and_underscore():
    assert all(is_token(secrets.token_urlsafe(32)) for _ in range(100))
    assert is_token("tok_EN-1")
    for value in ("", "tokén", "tok٣", "tok en", "tok;x", "tok=", None, 5):
        assert not is_token(value), value


def test_clearing_a_cookie_expires_it_at_once():
    assert Cookie("lmwb_session", "", 0).header(secure=False) == (
        "lmwb_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    )
