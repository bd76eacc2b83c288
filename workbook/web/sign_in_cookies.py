"""The sign-in cookies, set by the server as HttpOnly so that no page script can read them.

A Streamlit script cannot write HTTP response headers, and a cookie written from page
script (``document.cookie``) can never be HttpOnly: any script that ever ran in the page
could read the session token. So the token never goes to the browser's script at all:

1. The page (``pages/common.py``) asks ``HANDOFF.offer(...)`` for a one-time code standing
   for the cookies to set (the session token; the browser's sign-in token).
2. A tiny script in the page POSTs that code to ``COOKIE_ROUTE`` on the same server.
3. The route (``set_sign_in_cookies``, mounted by ``serve.py``) takes the code, once, and answers with ``Set-Cookie`` headers:
   ``HttpOnly; SameSite=Strict; Path=/`` (and ``Secure`` over HTTPS).

A code is good for ``ttl_s`` seconds and one use; it only ever sets cookies in the browser
that presents it. The browser then sends the cookies with every new connection, where
``st.context.cookies`` reads them on the server.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

COOKIE_ROUTE = "/api/workbook/sign-in-cookies"
SESSION_COOKIE = "lmwb_session"
BROWSER_COOKIE = "lmwb_browser"
# A browser token is kept as long as browsers allow (Chrome caps cookies at 400 days).
BROWSER_COOKIE_MAX_AGE_S = 400 * 24 * 3600
MAX_CODE_CHARS = 64
# What secrets.token_urlsafe produces (the base64url alphabet), in ASCII only: str.isalnum()
# would also let letters such as "é" through into a Set-Cookie header.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def is_token(value: object) -> bool:
    """Whether ``value`` is a non-empty string of token characters (``[A-Za-z0-9_-]``)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


@dataclass(frozen=True)
class Cookie:
    """One cookie to set; an empty ``value`` with ``max_age_s=0`` deletes it."""

    name: str
    value: str
    max_age_s: int

    def header(self, *, secure: bool) -> str:
        """The ``Set-Cookie`` header value for it."""
        attributes = f"Path=/; Max-Age={int(self.max_age_s)}; HttpOnly; SameSite=Strict"
        return f"{self.name}={self.value}; {attributes}" + ("; Secure" if secure else "")


class CookieHandoff:
    """One-time codes that a browser trades for HttpOnly cookies (see the module docstring).

    Thread-safe: codes are offered from Streamlit's script threads and taken on the server's
    event loop.
    """

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._pending: dict[str, tuple[float, tuple[Cookie, ...]]] = {}
        self._lock = threading.Lock()

    def offer(self, cookies: Sequence[Cookie]) -> str:
        """A new one-time code that stands for ``cookies``."""
        for cookie in cookies:
            # Token values only (or empty, to clear): nothing that could end the header early.
            if cookie.value and not is_token(cookie.value):
                raise ValueError(f"cookie {cookie.name} has characters a token never has")
        code = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v[0] > now}
            self._pending[code] = (now + self.ttl_s, tuple(cookies))
        return code

    def take(self, code: str) -> tuple[Cookie, ...]:
        """The cookies a code stands for, once; nothing for an unknown, used or old code."""
        with self._lock:
            expires, cookies = self._pending.pop(code, (0.0, ()))
        return cookies if expires > time.monotonic() else ()


# One per process: the page offers codes and the route (same process) takes them.
HANDOFF = CookieHandoff()


async def set_sign_in_cookies(request: Request) -> Response:
    """The route: trade a one-time code (the request body) for HttpOnly ``Set-Cookie`` headers.

    Answers 204 with the cookies, 404 for an unknown, used or expired code, 413 for a body
    longer than any code.
    """
    from starlette.responses import Response

    no_store = {"Cache-Control": "no-store"}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CODE_CHARS:
            return Response(status_code=413, headers=no_store)
    cookies = HANDOFF.take(body.decode("ascii", errors="replace").strip())
    if not cookies:
        return Response(status_code=404, headers=no_store)
    # Behind a TLS-terminating proxy the app sees http; the proxy says what the browser used.
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response = Response(status_code=204, headers=no_store)
    for cookie in cookies:
        response.headers.append("set-cookie", cookie.header(secure=secure))
    return response
