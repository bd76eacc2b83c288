"""The server: Streamlit serving ``app.py``, plus the route that sets the sign-in cookies.

Start it with ``streamlit run serve.py`` (what ``make run`` and the browser tests do). The
extra route exists because a Streamlit script cannot set response headers, and the session
cookie must be HttpOnly: see ``workbook/web/sign_in_cookies.py``. ``streamlit run app.py``
still serves the app, but then the browser cannot remember a sign-in across reloads.
"""

from __future__ import annotations

import streamlit as st
from starlette.routing import Route

from workbook.web import COOKIE_ROUTE, set_sign_in_cookies

app = st.App("app.py", routes=[Route(COOKIE_ROUTE, set_sign_in_cookies, methods=["POST"])])
