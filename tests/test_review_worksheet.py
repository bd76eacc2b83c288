"""Moodle's offline grading worksheet: the upload/fill/download round trip, fresh worksheets."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from workbook.config import Settings, SettingsError
from workbook.review.feedback import FeedbackItem
from workbook.review.grading import GRADE_SCALE, ReviewError, grade_label, grade_points
from workbook.review.worksheet import (
    WORKSHEET_HEADERS,
    GradeEntry,
    feedback_comment_html,
    fill_worksheet,
    fresh_worksheet,
    moodle_date,
)

MODIFIED = datetime(2026, 11, 27, 21, 5, tzinfo=UTC)


def php_fputcsv_line(fields: list[str]) -> str:
    """A record as Moodle's writer (PHP fputcsv) writes it: quotes only where needed."""
    out = []
    for value in fields:
        if any(ch in value for ch in ',"  \t\n\r'):
            value = '"' + value.replace('"', '""') + '"'
        out.append(value)
    return ",".join(out) + "\n"


def moodle_worksheet(rows: list[list[str]], *, bom: bool = True) -> bytes:
    text = php_fputcsv_line(list(WORKSHEET_HEADERS)) + "".join(php_fputcsv_line(r) for r in rows)
    return (("\ufeff" if bom else "") + text).encode("utf-8")


ROWS = [
    [
        "Participant 1234567",
        "Ada Lovelace",
        "Ada@Example.org",
        "Submitted for grading",
        "",
        "",
        "Yes",
        "Monday, 23 November 2026, 10:15 AM",
        '<p>Q1. Shape is [1, 5, 49152], "tokens", not words,\nsee below</p>',
        "-",
        "",
    ],
    [
        "Participant 7654321",
        "Bob Nobody",
        "bob@example.org",
        "No submission",
        "",
        "",
        "Yes",
        "-",
        "",
        "-",
        "",
    ],
    [
        "Participant 1111111",
        "Cleo Locked",
        "cleo@example.org",
        "Submitted for grading",
        "",
        "",
        "No",
        "Tuesday, 24 November 2026, 9:00 PM",
        "text",
        "-",
        "",
    ],
]


def entry(label: str = "Meets expectations", comment: str = "<p>Good</p>") -> GradeEntry:
    return GradeEntry(label=label, comment_html=comment, modified=MODIFIED)


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_grade_labels_map_to_points_and_back():
    for label in GRADE_SCALE:
        assert grade_label(grade_points(label)) == label
    assert grade_points(None) is None and grade_label(None) is None
    assert (
        grade_points("Excellent") > grade_points("Meets expectations") > grade_points("Beginning")
    )


def test_unknown_grade_label_is_refused_with_the_scale_named():
    with pytest.raises(ReviewError, match="Meets expectations"):
        grade_points("A+")


def test_round_trip_keeps_every_row_and_column_and_fills_only_grade_and_feedback():
    uploaded = moodle_worksheet(ROWS)
    result = fill_worksheet(uploaded, {"ada@example.org": entry()}, timezone=UTC)

    before, after = parse(uploaded), parse(result.data)
    assert after[0] == before[0] == list(WORKSHEET_HEADERS)
    assert len(after) == len(before)
    changed = {"Grade", "Feedback comments", "Last modified (grade)"}
    for old, new in zip(before[1:], after[1:], strict=True):
        for name, old_value, new_value in zip(WORKSHEET_HEADERS, old, new, strict=True):
            if name not in changed or old[2].lower() != "ada@example.org":
                assert new_value == old_value, (old[2], name)
    ada = dict(zip(WORKSHEET_HEADERS, after[1], strict=True))
    assert ada["Identifier"] == "Participant 1234567"
    assert ada["Grade"] == "Meets expectations"
    assert ada["Feedback comments"] == "<p>Good</p>"
    assert ada["Last modified (grade)"] == "Friday, 27 November 2026, 9:05 PM"
    assert result.filled == ["ada@example.org"]
    assert result.unmatched_rows == ["bob@example.org", "cleo@example.org"]


def test_round_trip_keeps_byte_order_mark_and_untouched_rows_byte_for_byte():
    uploaded = moodle_worksheet(ROWS)
    result = fill_worksheet(uploaded, {"ada@example.org": entry()})
    assert result.data.startswith("\ufeff".encode())
    old_lines = uploaded.decode("utf-8").split("\n")
    new_lines = result.data.decode("utf-8").split("\n")
    # Ada's record spans two physical lines (a quoted line break in her online text).
    assert new_lines[0] == old_lines[0]
    assert new_lines[3:] == old_lines[3:]


def test_worksheet_without_matches_comes_back_identical():
    uploaded = moodle_worksheet(ROWS, bom=False)
    assert fill_worksheet(uploaded, {}).data == uploaded
    assert fill_worksheet(uploaded, {"zed@example.org": entry()}).not_in_worksheet == [
        "zed@example.org"
    ]


def test_row_whose_grade_cannot_be_changed_is_left_alone():
    uploaded = moodle_worksheet(ROWS)
    result = fill_worksheet(uploaded, {"cleo@example.org": entry("Excellent")})
    assert result.locked == ["cleo@example.org"]
    assert result.filled == []
    assert result.data == uploaded


def test_point_graded_assignment_gets_points_scaled_to_its_maximum():
    rows = [list(ROWS[0])]
    rows[0][5] = "100.00"
    result = fill_worksheet(moodle_worksheet(rows), {"ada@example.org": entry()})
    assert parse(result.data)[1][4] == "75.00"


def test_semicolon_worksheet_and_crlf_line_endings_are_kept():
    text = (
        "\r\n".join(
            ";".join(f'"{v}"' if " " in v else v for v in r)
            for r in [
                list(WORKSHEET_HEADERS),
                [
                    "Participant 5",
                    "Ada Lovelace",
                    "ada@example.org",
                    "x",
                    "",
                    "",
                    "Yes",
                    "-",
                    "",
                    "-",
                    "",
                ],
                ["Participant 6", "Bob", "bob@example.org", "x", "", "", "Yes", "-", "", "-", ""],
            ]
        )
        + "\r\n"
    )
    uploaded = text.encode("utf-8")
    result = fill_worksheet(uploaded, {"ada@example.org": entry()})
    out = result.data.decode("utf-8")
    assert out.count("\r\n") == 3 and "\n" not in out.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(out, newline=""), delimiter=";"))
    assert rows[1][4] == "Meets expectations"
    assert out.split("\r\n")[2] == text.split("\r\n")[2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"Name,Grade\nAda,1\n", "Email address"),
        ("Identifier,Email address,Grade\n".encode("utf-16"), "UTF-8"),
    ],
)
def test_a_file_that_is_not_a_moodle_worksheet_gets_a_clear_message(data, message):
    with pytest.raises(ReviewError, match=message):
        fill_worksheet(data, {})


def test_fresh_worksheet_has_moodle_headers_in_order_and_one_row_per_student():
    data = fresh_worksheet(
        [("Ada Lovelace", "ada@example.org"), ("Bob", "bob@example.org")],
        {"ada@example.org": entry("Excellent")},
    )
    rows = parse(data)
    assert rows[0] == list(WORKSHEET_HEADERS)
    ada, bob = (dict(zip(WORKSHEET_HEADERS, r, strict=True)) for r in rows[1:])
    assert (ada["Full name"], ada["Grade"], ada["Feedback comments"]) == (
        "Ada Lovelace",
        "Excellent",
        "<p>Good</p>",
    )
    assert bob["Grade"] == "" and bob["Email address"] == "bob@example.org"


def test_fresh_worksheet_can_be_filled_again_without_losing_anything():
    data = fresh_worksheet([("Ada Lovelace", "ada@example.org")], {})
    filled = fill_worksheet(data, {"ada@example.org": entry("Beginning")})
    assert parse(filled.data)[1][4] == "Beginning"
    assert len(parse(filled.data)[1]) == len(WORKSHEET_HEADERS)


def test_feedback_html_escapes_the_tas_text_and_keeps_line_breaks():
    html = feedback_comment_html(
        "Nice <script>alert(1)</script> work\nline two\n\nnew paragraph",
        {"q1": "Say <b>tokens</b>", "step2": "   "},
        [FeedbackItem("step2", "Step 2"), FeedbackItem("q1", "Q1. Shape")],
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "line two" in html and "<br>" in html
    assert html.count("<p>") >= 3
    assert "<strong>Q1. Shape:</strong>" in html and "&lt;b&gt;tokens&lt;/b&gt;" in html
    assert "Step 2" not in html  # a blank item comment is left out


def test_moodle_date_uses_twelve_hour_clock_without_leading_zeros():
    assert moodle_date(datetime(2026, 1, 5, 0, 7), UTC) == "Monday, 5 January 2026, 12:07 AM"
    assert moodle_date(datetime(2026, 1, 5, 13, 30, tzinfo=UTC), UTC) == (
        "Monday, 5 January 2026, 1:30 PM"
    )


def test_moodle_date_is_written_in_the_courses_time_zone():
    # The store keeps UTC; Moodle reads the worksheet's dates as its own local time.
    stored = datetime(2026, 7, 1, 22, 30)  # naive = UTC
    assert moodle_date(stored, ZoneInfo("Europe/Berlin")) == "Thursday, 2 July 2026, 12:30 AM"
    assert moodle_date(stored, ZoneInfo("America/New_York")) == ("Wednesday, 1 July 2026, 6:30 PM")
    # Winter time in Berlin is one hour from UTC, not two.
    assert moodle_date(datetime(2026, 1, 5, 8, 0), ZoneInfo("Europe/Berlin")) == (
        "Monday, 5 January 2026, 9:00 AM"
    )


def test_moodle_date_defaults_to_the_servers_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert moodle_date(datetime(2026, 1, 5, 0, 7)) == "Monday, 5 January 2026, 9:07 AM"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_filled_worksheet_dates_follow_the_timezone_setting():
    tokyo = ZoneInfo("Asia/Tokyo")
    result = fill_worksheet(moodle_worksheet(ROWS), {"ada@example.org": entry()}, timezone=tokyo)
    ada = parse(result.data)[1]
    # 21:05 UTC on the 27th is 6:05 the next morning in Tokyo.
    assert ada[WORKSHEET_HEADERS.index("Last modified (grade)")] == (
        "Saturday, 28 November 2026, 6:05 AM"
    )
    fresh = fresh_worksheet(
        [("Ada Lovelace", "ada@example.org")],
        {"ada@example.org": entry()},
        timezone=tokyo,
    ).decode("utf-8")
    assert "Saturday, 28 November 2026, 6:05 AM" in fresh


@pytest.mark.parametrize("value", ["Mars/Olympus", "not a zone", "../etc"])
def test_an_unknown_timezone_setting_is_refused_with_its_name(value):
    with pytest.raises(SettingsError, match="WORKBOOK_TIMEZONE"):
        Settings.from_env({"WORKBOOK_TIMEZONE": value})


def test_the_timezone_setting_is_read_from_the_environment():
    assert Settings.from_env({"WORKBOOK_TIMEZONE": "Europe/Berlin"}).timezone() == ZoneInfo(
        "Europe/Berlin"
    )
    assert Settings.from_env({}).timezone() is None
