"""Streamlit entry point: page config, navigation by role, the shared sidebar, then the page.

The server is ``serve.py``, which serves this file (``make run``, or ``streamlit run
serve.py``). ``streamlit run app.py`` alone shows the app too, but without serve.py's
cookie route a sign-in is lost on every reload. Everything else lives in ``pages/`` (thin
pages) and ``workbook/`` (the logic).
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
staff_pages = [
    st.Page("pages/review.py", title="TA review", icon="🧑‍🏫"),
    st.Page("pages/class_view.py", title="Class", icon="📊"),
]


def _not_for_you(pages: list[st.Page], message: str) -> list[st.Page]:
    """Hidden stand-ins at the URLs of pages this user may not open.

    Without them a bookmarked or shared link opens Streamlit's "Page not found" dialog;
    with them the page says plainly who it is for. They draw the message only: the real
    page's code never runs for this user.
    """
    return [
        st.Page(
            lambda: common.not_for_you(message),
            title=page.title,
            url_path=page.url_path,
            visibility="hidden",
        )
        for page in pages
    ]


if user is None:
    navigation = {
        "Workbook": [
            home,
            explore,
            *_not_for_you(student_pages, "Sign in on the Home page to open this page."),
            *_not_for_you(
                staff_pages, "This page is for course staff: sign in with your staff account."
            ),
        ]
    }
elif user.role == "student":
    navigation = {
        "Workbook": [home, *student_pages],
        "Going further": [explore],
        "": _not_for_you(
            staff_pages,
            "This page is for course staff (TAs and the instructor). Your own work and your "
            "TA's feedback are on your Home page.",
        ),
    }
else:
    navigation = {
        "Workbook": [home],
        "Teaching": staff_pages,
        "Going further": [explore],
        "": _not_for_you(
            student_pages,
            "This page is for students. Open a student's work from the roster in TA review.",
        ),
    }

# Streamlit's own menu is hidden: its markup puts headings straight into a <ul> and list items
# outside any list, which screen readers announce as a broken list (docs/accessibility.md).
# The sidebar draws the same menu from page links instead.
page = st.navigation(navigation, position="hidden")
common.sidebar(user, navigation)
common.send_cookie()
page.run()
