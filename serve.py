"""The server: Streamlit serving ``app.py``, the route that sets the sign-in cookies, and LTI.

Start it with ``streamlit run serve.py`` (what ``make run`` and the browser tests do). The
extra route exists because a Streamlit script cannot set response headers, and the session
cookie must be HttpOnly: see ``workbook/web/sign_in_cookies.py``. ``streamlit run app.py``
still serves the app, but then the browser cannot remember a sign-in across reloads.

The LTI 1.3 routes (``/lti/login``, ``/lti/launch``, ``/lti/jwks``, ``/lti/config``, and
``/lti/enter``, the same-site step that sets the session cookie after a launch) come from
``workbook.lti``; they open the database on their first request. As the server starts, the
LTI score outbox starts (``Workbook.start_services``), whatever ``WORKBOOK_PRELOAD`` says.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st
from starlette.routing import Route

from workbook import Settings, SettingsError, Workbook
from workbook.lti import lti_routes
from workbook.web import COOKIE_ROUTE, set_sign_in_cookies


@asynccontextmanager
async def serving(_app: Any) -> AsyncIterator[None]:
    """As the server starts: what must run while it serves, preload or not (the LTI score
    outbox, on the same ``Workbook`` the pages use)."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:  # every page says what to fix; nothing to start meanwhile
        logging.getLogger("workbook").error("not starting the LTI score outbox: %s", exc)
    else:
        Workbook.shared(settings).start_services()
    yield


app = st.App(
    "app.py",
    lifespan=serving,
    routes=[Route(COOKIE_ROUTE, set_sign_in_cookies, methods=["POST"]), *lti_routes()],
)
