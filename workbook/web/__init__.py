"""web: what the app hands the browser that needs care, because a student or an attacker shaped it.

- ``output_view``: a student's outputs drawn without trusting them: text as text, rich outputs
  only inside a sandboxed frame that can neither run script nor load anything;
- ``outputs``: plain-text helpers for nbformat outputs (tracebacks without colour codes);
- ``sign_in_cookies``: HttpOnly sign-in cookies, handed over through one-time codes at a
  route ``serve.py`` mounts.
"""

from workbook.web.output_view import CONTENT_SECURITY_POLICY, OutputView, views
from workbook.web.sign_in_cookies import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_MAX_AGE_S,
    COOKIE_ROUTE,
    HANDOFF,
    SESSION_COOKIE,
    Cookie,
    set_sign_in_cookies,
)

__all__ = [
    "BROWSER_COOKIE",
    "BROWSER_COOKIE_MAX_AGE_S",
    "CONTENT_SECURITY_POLICY",
    "COOKIE_ROUTE",
    "HANDOFF",
    "SESSION_COOKIE",
    "Cookie",
    "OutputView",
    "set_sign_in_cookies",
    "views",
]
