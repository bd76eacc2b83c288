"""What every page shares: the cached Workbook, the signed-in user, error display.

Pages import this module; it is the only place that keeps app-wide objects in Streamlit's
caches. Session state holds small values only (the signed-in user's id and a timestamp).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from workbook import Settings, SettingsError, User, Workbook, WorkbookError
from workbook.web import (
    BROWSER_COOKIE,
    BROWSER_COOKIE_MAX_AGE_S,
    COOKIE_ROUTE,
    HANDOFF,
    SESSION_COOKIE,
    Cookie,
    is_token,
)

USER_KEY = "auth:user_id"
ACTIVE_KEY = "auth:last_active"
TOKEN_KEY = "auth:token"
COOKIE_KEY = "auth:cookie"  # a cookie change waiting to be sent to the browser

# Trades a one-time code for the sign-in cookies: the server's answer sets them HttpOnly
# (see workbook/web/sign_in_cookies.py), so no script in the page ever holds the session token.
# Components v2 run in the page itself (not an iframe), so the request is same-origin.
_COOKIE_JS = """
export default function(component) {
  const { data } = component;
  if (!data || !data.code || !data.url) { return; }
  fetch(data.url, { method: "POST", body: data.code, credentials: "same-origin",
                    cache: "no-store" }).catch(() => {});
}
"""

_cookie_writer = st.components.v2.component("workbook_session_cookie", js=_COOKIE_JS)


# Streamlit treats a folder named ``pages/`` beside the entry script as old-style pages
# until the first ``st.navigation`` call in the process: right after a server (re)start, a
# browser that reconnects straight to, say, /notebook would run that page on its own,
# without app.py's navigation and sidebar. app.py marks itself here on every run; a page
# that finds no mark was started that old way and hands over to app.py.
_entry_point_ran = False


def entered_through_app() -> None:
    """Called by app.py before anything else: pages run inside its navigation from now on."""
    global _entry_point_ran
    _entry_point_ran = True


def _require_entry_point() -> None:
    if not _entry_point_ran:
        st.switch_page("app.py")


@st.cache_resource(show_spinner="Checking the server set-up…")
def _preflight_error(settings: Settings) -> str | None:
    """Why the app cannot run in this configuration (checked once per configuration)."""
    try:
        Workbook.shared(settings).preflight()
    except WorkbookError as exc:
        return str(exc)
    # Reference model, kernel pool and spare kernels get ready in the background.
    Workbook.shared(settings).preload()
    return None


def get_workbook() -> Workbook:
    """The app-wide Workbook for the current settings (one per distinct configuration)."""
    _require_entry_point()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        st.error(f"The server is misconfigured: {exc}. Fix the environment variable and restart.")
        st.stop()
    problem = _preflight_error(settings)
    if problem is not None:
        st.error(problem)
        st.stop()
    # The one serve.py's start-up uses too (Workbook.shared): one score outbox per process.
    return Workbook.shared(settings)


def current_user() -> User | None:
    """The signed-in user, or None. Signs out a session idle for too long.

    A fresh browser session (a reload, a new tab) is signed in again from the sign-in cookie
    when its remembered session is still valid.
    """
    wb = get_workbook()
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        token = st.context.cookies.get(SESSION_COOKIE)
        user = wb.session_user(token) if token else None
        if user is None:
            return None
        st.session_state[USER_KEY] = user.id
        st.session_state[TOKEN_KEY] = token
        st.session_state[ACTIVE_KEY] = time.time()
        return user
    idle_s = time.time() - st.session_state.get(ACTIVE_KEY, 0.0)
    if idle_s > wb.settings.session_idle_min * 60:
        sign_out()
        st.toast("You were signed out after a period of inactivity. Your work is saved.")
        return None
    try:
        user = wb.user(user_id)
    except WorkbookError:
        sign_out()
        return None
    st.session_state[ACTIVE_KEY] = time.time()
    return user


def sign_in_with_password(email: str, password: str) -> None:
    """Check a password (throttled per address and browser) and sign this session in.

    Raises:
        WorkbookError: wrong email or password, or too many failures (says how long to wait).
    """
    wb = get_workbook()
    browser = _browser_cookie() or wb.new_browser_token()
    user = wb.sign_in(email, password, client=st.context.ip_address or "", browser=browser)
    sign_in(user, browser=browser)


def sign_in(user: User, *, browser: str | None = None) -> None:
    """Sign this browser session in and remember it in HttpOnly cookies.

    Args:
        user: the user who just proved who they are (a password, or registering).
        browser: this browser's sign-in token if ``wb.sign_in`` already trusted it; else the
            browser's token (or a new one) is trusted for the user here.
    """
    wb = get_workbook()
    if browser is None:
        browser = _browser_cookie() or wb.new_browser_token()
        wb.trust_browser(user.id, browser)
    token = wb.start_session(user.id)
    if user.role == "student":
        wb.warm_kernel(user.id)  # in the background: their kernel is ready before Run
    st.session_state[USER_KEY] = user.id
    st.session_state[TOKEN_KEY] = token
    st.session_state[ACTIVE_KEY] = time.time()
    st.session_state[COOKIE_KEY] = HANDOFF.offer(
        [
            Cookie(SESSION_COOKIE, token, wb.settings.session_idle_min * 60),
            Cookie(BROWSER_COOKIE, browser, BROWSER_COOKIE_MAX_AGE_S),
        ]
    )


def _browser_cookie() -> str | None:
    """This browser's sign-in token from its cookie, if it sent a well-formed one."""
    value = st.context.cookies.get(BROWSER_COOKIE)
    return value if is_token(value) and 20 <= len(value) <= 100 else None


def sign_out() -> None:
    """Forget the sign-in here, on the server and in the browser's cookie."""
    token = st.session_state.get(TOKEN_KEY)
    if token:
        get_workbook().end_session(token)
    for key in (USER_KEY, ACTIVE_KEY, TOKEN_KEY):
        st.session_state.pop(key, None)
    st.session_state[COOKIE_KEY] = HANDOFF.offer([Cookie(SESSION_COOKIE, "", 0)])


def send_cookie() -> None:
    """Send a pending sign-in cookie change to the browser (called once per run by app.py).

    Only a one-time code goes to the page; the server's answer to it sets the cookies.
    """
    code = st.session_state.pop(COOKIE_KEY, None)
    if isinstance(code, str):
        _cookie_writer(key="auth:cookie-writer", data={"code": code, "url": COOKIE_ROUTE}, height=0)


def require_user(*roles: str) -> User:
    """Return the signed-in user, or stop the page with a message.

    Args:
        *roles: when given, the user's role must be one of these (checked on the server on
            every run; nothing of the page is sent otherwise).
    """
    user = current_user()
    if user is None:
        st.warning("Please sign in on the Home page first.")
        st.page_link("pages/home.py", label="Go to Home", icon="🏠")
        st.stop()
    if roles and user.role not in roles:
        st.error("This page is for course staff only.")
        st.stop()
    return user


def not_for_you(message: str) -> None:
    """The whole page for a URL this user may not open: who it is for, and a way home."""
    st.title("Not available to you")
    st.info(message)
    st.page_link("pages/home.py", label="Go to Home", icon="🏠")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Show a workbook error as a plain message instead of a traceback."""
    try:
        yield
    except WorkbookError as exc:
        st.error(str(exc))


# Every control shows where keyboard focus is with the same ring (WCAG 2.4.7): some of
# Streamlit's widgets only change a border colour, which is easy to miss. Streamlit's code
# blocks colour their tokens from a fixed palette (grey comments 3.5:1, green strings 2.9:1,
# blue keywords 3.9:1 on the block's background, below WCAG AA's 4.5:1) that no theme option
# sets; ours are the code editor's colours, each 6:1 or more (docs/accessibility.md). The
# header's "Running… Stop" while a script runs is grey on white (3.4:1): darkened too.
_CODE = '[data-testid="stCode"] .token'
_PAGE_STYLE = f"""<style>
:focus-visible {{ outline: 2px solid #1f3fa6 !important; outline-offset: 2px; }}
{_CODE}.comment, {_CODE}.prolog, {_CODE}.doctype, {_CODE}.cdata {{ color: #4f5b66; }}
{_CODE}.punctuation, {_CODE}.operator, {_CODE}.entity {{ color: #3d4350; }}
{_CODE}.keyword, {_CODE}.tag {{ color: #6f1d99; }}
{_CODE}.function, {_CODE}.class-name, {_CODE}.selector {{ color: #1f3fa6; }}
{_CODE}.string, {_CODE}.char, {_CODE}.attr-value {{ color: #a31515; }}
{_CODE}.number, {_CODE}.regex, {_CODE}.boolean, {_CODE}.constant, {_CODE}.symbol {{
  color: #0f6b43; }}
{_CODE}.decorator, {_CODE}.atrule, {_CODE}.url {{ color: #5c4a00; }}
{_CODE}.attr-name, {_CODE}.property, {_CODE}.variable {{ color: #24476b; }}
{_CODE}.important, {_CODE}.deleted {{ color: #b00020; }}
{_CODE}.inserted {{ color: #0f6b43; }}
[data-testid="stStatusWidget"], [data-testid="stStatusWidget"] button {{ color: #3d4350; }}
</style>"""


def sidebar(user: User | None, navigation: dict[str, list[st.Page]]) -> None:
    """The sidebar shown on every page: the menu, who is signed in, the model, sign out.

    Args:
        user: the signed-in user, or None.
        navigation: section title -> pages, as given to ``st.navigation``; hidden pages
            (the "not for you" stand-ins) are not listed.
    """
    wb = get_workbook()
    st.html(_PAGE_STYLE)
    with st.sidebar:
        for section, pages in navigation.items():
            shown = [page for page in pages if page.visibility == "visible"]
            if not shown:
                continue
            if section:
                st.markdown(f"**{section}**")
            for page in shown:
                st.page_link(page)
        st.divider()
        st.caption(f"Model: **{wb.settings.model_name}**")
        if user is not None:
            st.caption(f"Signed in as **{user.name}** ({user.role})")
            st.button("Sign out", key="sidebar:sign_out", on_click=sign_out)
