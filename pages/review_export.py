"""The "Export for Moodle" view of the TA review page: grading worksheet and responses CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from workbook import review


def show(wb: Any, user: Any, records: list[dict]) -> None:
    """Draw the two exports (of the students ``user`` may see).

    Args:
        wb: the app's ``Workbook``.
        user: the signed-in TA or instructor.
        records: the roster records (``review.roster_records``), for the fresh worksheet.

    Raises:
        review.ReviewError: an uploaded worksheet cannot be read.
    """
    grades = wb.lti.worksheet_grades(user)
    drafts = sum(1 for r in records if r["feedback"] == "draft")
    st.markdown("#### Moodle offline grading worksheet")
    st.caption(
        f"{_count(len(grades), 'student')} with released feedback; only released feedback "
        "is exported"
        + (f" ({_count(drafts, 'student')} with unreleased drafts)." if drafts else ".")
    )
    st.markdown(
        "In the Moodle assignment choose *Download grading worksheet*, upload that file here, "
        "and upload the file you get back to Moodle (*Upload grading worksheet*). Rows are "
        "matched by email; only **Grade**, **Feedback comments** and **Last modified "
        "(grade)** change."
    )
    uploaded = st.file_uploader(
        "Worksheet downloaded from Moodle (CSV)", type=["csv"], key="review:export:upload"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    result = None
    if uploaded is not None:
        try:
            result = review.fill_worksheet(
                uploaded.getvalue(), grades, timezone=wb.settings.timezone()
            )
        except review.ReviewError as exc:
            st.error(str(exc))
    if uploaded is not None and result is not None:
        st.success(f"Filled {_count(len(result.filled), 'row')} with grade and feedback.")
        if result.locked:
            st.warning(
                "Moodle says these grades cannot be changed (locked or overridden in the "
                "gradebook); their rows were left as they were:"
            )
            st.text("\n".join(result.locked))
        if result.not_in_worksheet:
            st.warning("Released feedback with no row in the worksheet (check the emails):")
            st.text("\n".join(result.not_in_worksheet))
        if result.unmatched_rows:
            with st.expander(
                f"{_count(len(result.unmatched_rows), 'row')} without released feedback"
            ):
                st.text("\n".join(result.unmatched_rows))
        st.download_button(
            "Download the filled worksheet",
            data=result.data,
            file_name=uploaded.name,
            mime="text/csv",
            key="review:export:filled",
            type="primary",
        )
    elif uploaded is None:
        st.caption(
            "No worksheet uploaded: the file below has Moodle's columns but no participant "
            "identifiers, so use it for reading; Moodle needs its own worksheet back."
        )
        st.download_button(
            "Download a new worksheet",
            data=review.fresh_worksheet(
                [(r["name"], r["email"]) for r in records],
                grades,
                timezone=wb.settings.timezone(),
            ),
            file_name=f"grading-worksheet-{stamp}.csv",
            mime="text/csv",
            key="review:export:fresh",
        )

    st.markdown("#### All responses")
    st.caption("One row per student, one column per reflection and answer (UTF-8 CSV).")
    st.download_button(
        "Download responses CSV",
        data=wb.lti.responses_csv(user),
        file_name=f"responses-{stamp}.csv",
        mime="text/csv",
        key="review:export:responses",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
