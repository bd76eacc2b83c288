"""What every page shares: the cached Workbook, the signed-in user, error display.

Pages import this module; it is the only place that keeps app-wide objects in Streamlit's
caches. Session state holds small values only (the signed-in user's id and a timestamp).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from workbook.config import Settings, SettingsError
from workbook.service import User, Workbook, WorkbookError

USER_KEY = "auth:user_id"
ACTIVE_KEY = "auth:last_active"
TOKEN_KEY = "auth:token"
COOKIE_KEY = "auth:cookie"  # a cookie change waiting to be sent to the browser
COOKIE_NAME = "lmwb_session"

# Sets or clears the sign-in cookie from the page (components v2 run in the page itself,
# not in an iframe). A reload sends the cookie with the new connection, and
# ``current_user`` signs the student back in from it.
_COOKIE_JS = """
export default function(component) {
  const { data } = component;
  if (!data || !data.name) { return; }
  const secure = location.protocol === "https:" ? "; Secure" : "";
  const value = data.token ? encodeURIComponent(data.token) : "";
  const maxAge = data.token ? data.max_age : 0;
  document.cookie = `${data.name}=${value}; path=/; max-age=${maxAge}; SameSite=Strict${secure}`;
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


@st.cache_resource(show_spinner=False)
def _workbook_for(settings: Settings) -> Workbook:
    return Workbook(settings)


@st.cache_resource(show_spinner="Checking the server set-up…")
def _preflight_error(settings: Settings) -> str | None:
    """Why the app cannot run in this configuration (checked once per configuration)."""
    try:
        _workbook_for(settings).preflight()
    except WorkbookError as exc:
        return str(exc)
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
    return _workbook_for(settings)


def current_user() -> User | None:
    """The signed-in user, or None. Signs out a session idle for too long.

    A fresh browser session (a reload, a new tab) is signed in again from the sign-in cookie
    when its remembered session is still valid.
    """
    wb = get_workbook()
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        token = st.context.cookies.get(COOKIE_NAME)
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


def sign_in(user: User) -> None:
    """Sign this browser session in and remember it in a cookie."""
    wb = get_workbook()
    token = wb.start_session(user.id)
    st.session_state[USER_KEY] = user.id
    st.session_state[TOKEN_KEY] = token
    st.session_state[ACTIVE_KEY] = time.time()
    st.session_state[COOKIE_KEY] = {
        "name": COOKIE_NAME,
        "token": token,
        "max_age": wb.settings.session_idle_min * 60,
    }


def sign_out() -> None:
    """Forget the sign-in here, on the server and in the browser's cookie."""
    token = st.session_state.get(TOKEN_KEY)
    if token:
        get_workbook().end_session(token)
    for key in (USER_KEY, ACTIVE_KEY, TOKEN_KEY):
        st.session_state.pop(key, None)
    st.session_state[COOKIE_KEY] = {"name": COOKIE_NAME, "token": "", "max_age": 0}


def send_cookie() -> None:
    """Send a pending sign-in cookie change to the browser (called once per run by app.py)."""
    change = st.session_state.pop(COOKIE_KEY, None)
    if change is not None:
        _cookie_writer(key="auth:cookie-writer", data=change, height=0)


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


def sidebar(user: User | None) -> None:
    """The sidebar shown on every page: who is signed in, the active model, sign out."""
    wb = get_workbook()
    with st.sidebar:
        st.caption(f"Model: **{wb.settings.model_name}**")
        if user is not None:
            st.caption(f"Signed in as **{user.name}** ({user.role})")
            st.button("Sign out", key="sidebar:sign_out", on_click=sign_out)
