"""The server: Streamlit serving ``app.py``, the route that sets the sign-in cookies, and LTI.

Start it with ``streamlit run serve.py`` (what ``make run`` and the browser tests do). The
extra route exists because a Streamlit script cannot set response headers, and the session
cookie must be HttpOnly: see ``workbook/web/sign_in_cookies.py``. ``streamlit run app.py``
still serves the app, but then the browser cannot remember a sign-in across reloads.

The LTI 1.3 routes (``/lti/login``, ``/lti/launch``, ``/lti/jwks``, ``/lti/config``, and
``/lti/enter``, the same-site step that sets the session cookie after a launch) come from
``workbook.lti``; they open the database on their first request.
"""

from __future__ import annotations

import streamlit as st
from starlette.routing import Route

from workbook.lti import lti_routes
from workbook.web import COOKIE_ROUTE, set_sign_in_cookies

app = st.App(
    "app.py",
    routes=[Route(COOKIE_ROUTE, set_sign_in_cookies, methods=["POST"]), *lti_routes()],
)
