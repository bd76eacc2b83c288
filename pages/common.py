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


@st.cache_resource(show_spinner=False)
def _workbook_for(settings: Settings) -> Workbook:
    return Workbook(settings)


def get_workbook() -> Workbook:
    """The app-wide Workbook for the current settings (one per distinct configuration)."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        st.error(f"The server is misconfigured: {exc}. Fix the environment variable and restart.")
        st.stop()
    return _workbook_for(settings)


def current_user() -> User | None:
    """The signed-in user, or None. Signs out a session idle for too long."""
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        return None
    wb = get_workbook()
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
    st.session_state[USER_KEY] = user.id
    st.session_state[ACTIVE_KEY] = time.time()


def sign_out() -> None:
    for key in (USER_KEY, ACTIVE_KEY):
        st.session_state.pop(key, None)


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
