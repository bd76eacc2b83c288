"""web: what the app hands the browser that needs care, because a student or an attacker shaped it.

- ``output_view``: a student's outputs drawn without trusting them: text as text, rich outputs
  only inside a sandboxed frame that can neither run script nor load anything;
- ``outputs``: plain-text helpers for nbformat outputs (tracebacks without colour codes);
- ``sign_in_cookies``: HttpOnly sign-in cookies, handed over through one-time codes at a
  route ``serve.py`` mounts.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "output_view": (
            "CONTENT_SECURITY_POLICY",
            "OutputView",
            "views",
        ),
        "sign_in_cookies": (
            "BROWSER_COOKIE",
            "BROWSER_COOKIE_MAX_AGE_S",
            "COOKIE_ROUTE",
            "Cookie",
            "HANDOFF",
            "SESSION_COOKIE",
            "is_token",
            "set_sign_in_cookies",
        ),
    },
)
