"""Streamlit entry point: page config, navigation by role, the shared sidebar, then the page.

Run with ``make run`` (or ``streamlit run app.py``). Everything else lives in ``pages/``
(thin pages) and ``workbook/`` (the logic).
"""

from __future__ import annotations

import streamlit as st

from pages import common

common.entered_through_app()
st.set_page_config(page_title="LM Logits Workbook", page_icon="🧮", layout="wide")

user = common.current_user()

home = st.Page("pages/home.py", title="Home", icon="🏠", default=True)
explore = st.Page("pages/explore.py", title="Explore decoding", icon="🔭")
student_pages = [
    st.Page("pages/tutorials.py", title="Tutorial log", icon="📚"),
    st.Page("pages/notebook.py", title="Logits notebook", icon="🧮"),
    st.Page("pages/analysis.py", title="Analysis", icon="✍️"),
    st.Page("pages/submit.py", title="Submit", icon="📦"),
]
staff_pages = [st.Page("pages/review.py", title="TA review", icon="🧑‍🏫")]

if user is None:
    navigation = {"Workbook": [home, explore]}
elif user.role == "student":
    navigation = {"Workbook": [home, *student_pages], "Going further": [explore]}
else:
    navigation = {"Workbook": [home], "Teaching": staff_pages, "Going further": [explore]}

page = st.navigation(navigation)
common.sidebar(user)
common.send_cookie()
page.run()
