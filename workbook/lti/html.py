"""The plain pages the LTI routes answer with: refusals, "open in a new window", sign-in steps.

Plain HTML, readable without script or style (a heading, a paragraph, a link or a button),
English, ``lang`` set; every value put in a page is escaped. A refusal shows the name of the
failed check and a reference the operator's log carries, never any part of the token.
"""

from __future__ import annotations

import secrets
from html import escape

__all__ = ["Page", "handoff_page", "link_pending_page", "new_window_page", "refusal_page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}a.button,button{font-size:1.1rem;padding:.5rem 1rem}"
)


class Page:
    """An HTML page and the Content-Security-Policy it needs (its script, if any, by nonce)."""

    def __init__(self, title: str, body: str, *, script: str = "", frameable: bool = False):
        self.nonce = secrets.token_urlsafe(16)
        script_tag = f'<script nonce="{self.nonce}">{script}</script>' if script else ""
        self.html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main><h1>{escape(title)}</h1>{body}</main>{script_tag}</body></html>"
        )
        ancestors = "*" if frameable else "'none'"
        self.csp = (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
            f" script-src 'nonce-{self.nonce}'; frame-ancestors {ancestors}; base-uri 'none'"
        )

    def headers(self) -> dict[str, str]:
        """Headers every one of these pages carries."""
        return {
            "Content-Security-Policy": self.csp,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        }


def refusal_page(code: str, advice: str, reference: str, when: str) -> Page:
    """The page for a refused launch: what to tell the instructor, and a reference."""
    body = (
        f"<p>Sorry: {escape(advice)}</p>"
        f"<p>Reference: <strong>{escape(reference)}</strong> ({escape(code)}), {escape(when)}.</p>"
        "<p>Your work in the workbook is safe; nothing was changed.</p>"
    )
    return Page("The workbook could not open", body, frameable=True)


def new_window_page(url: str) -> Page:
    """Shown inside a frame, where the browser withholds the workbook's cookies."""
    body = (
        "<p>The workbook cannot sign you in inside this frame: the browser blocks its"
        " cookies here. Open it in a window of its own instead.</p>"
        f'<p><a class="button" href="{escape(url)}" target="_blank" rel="noopener">'
        "Open in a new window</a></p>"
        "<p>If nothing opens, allow pop-ups for the course site, or ask your instructor to"
        " set the activity's launch container to <em>New window</em>.</p>"
    )
    return Page("Open the workbook in a new window", body, frameable=True)


def handoff_page(action: str, code: str, target: str) -> Page:
    """The last step of a launch: a same-site form that trades a one-time code for the
    session cookie (sent on by script at once; the button is there without script)."""
    body = (
        "<p>Signing you in to the workbook…</p>"
        f'<form id="enter" method="post" action="{escape(action)}">'
        f'<input type="hidden" name="code" value="{escape(code)}">'
        f'<input type="hidden" name="target" value="{escape(target)}">'
        '<button type="submit">Continue to the workbook</button></form>'
    )
    return Page("Signing you in", body, script='document.getElementById("enter").requestSubmit();')


def link_pending_page(email: str, home_url: str) -> Page:
    """A first launch whose email belongs to a password account: confirm by signing in."""
    body = (
        f"<p>The workbook already has an account for <strong>{escape(email)}</strong>, made"
        " with a password. To connect it to your course login, sign in to the workbook once"
        " with that email and password, then open the workbook from the course again.</p>"
        f'<p><a class="button" href="{escape(home_url)}">Sign in with your password</a></p>'
        "<p>Forgot the password, or not your account? Tell your instructor.</p>"
    )
    return Page("Confirm your workbook account", body)
