"""The Class page's figures on a generated class whose whole history the test knows.

``bench/_class_data.py`` writes a class through the store (runs, verdicts, causes, errors,
autosaves, regressions, at known moments) and returns every revision it wrote. Each test
recomputes a figure from that list in plain Python, independently of the SQL, and compares.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from bench._class_data import STEPS, RunRecord, generate_class
from db import Store
from workbook.classview import (
    ClassViewOptions,
    ClassViewRefused,
    class_view,
    kaplan_meier,
    normalised_code,
    pseudonym,
)
from workbook.exercise import GENERIC_CAUSES, content

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
K, N_MIN, RECENT = 3, 20.0, 15.0


@pytest.fixture(scope="module")
def generated():
    store = Store(":memory:", question_ids=content.question_ids(), step_ids=content.step_ids())
    ta = store.create_user("ta@example.org", "Tina TA", "password-1", role="ta")
    ids, records = generate_class(store, 40, 25, seed=11, now=NOW, minutes=60)
    yield store, ta, ids, records
    store.close()


def options(**changes) -> ClassViewOptions:
    return ClassViewOptions(
        recent_minutes=RECENT, stuck_runs=K, stuck_minutes=N_MIN, now=NOW, **changes
    )


def runs_by(records: list[RunRecord], students=None) -> dict[tuple[int, str], list[RunRecord]]:
    """Each (student, step)'s runs in order (autosaves left out)."""
    out: dict[tuple[int, str], list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.ran and (students is None or r.user_id in students):
            out[(r.user_id, r.step_id)].append(r)
    return out


def expected_funnel(records, students=None) -> dict[str, tuple[int, int, int, int]]:
    opened, ran, ever, now = (defaultdict(set) for _ in range(4))
    for r in records:
        if students is not None and r.user_id not in students:
            continue
        opened[r.step_id].add(r.user_id)
        if r.ran:
            ran[r.step_id].add(r.user_id)
        if r.passed:
            ever[r.step_id].add(r.user_id)
    for (uid, step), runs in runs_by(records, students).items():
        if runs[-1].passed:
            now[step].add(uid)
    return {s: (len(opened[s]), len(ran[s]), len(ever[s]), len(now[s])) for s in STEPS}


def expected_causes(records, since=None) -> Counter:
    counts: Counter = Counter()
    for (_uid, step), runs in runs_by(records).items():
        failing = [r for r in runs if r.passed is False]
        if failing and (since is None or failing[-1].at >= since):
            counts[(step, failing[-1].cause or "unclassified")] += 1
    return counts


def test_funnel_counts_students_who_opened_ran_passed_and_pass_now(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    got = {
        r["step_id"]: (r["opened"], r["ran"], r["ever_passed"], r["pass_now"]) for r in view.funnel
    }
    want = expected_funnel(records)
    assert {s: got[s] for s in STEPS} == want
    assert got["setup"] == (0, 0, None, None)  # nobody ran the setup cell here; it has no check
    assert view.students == 40


def test_causes_count_each_students_latest_failing_run_recently_and_all_time(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    all_time = {(r["step_id"], r["cause"]): r["students_all"] for r in view.causes}
    recent = {(r["step_id"], r["cause"]): r["students_recent"] for r in view.causes}
    assert all_time == dict(expected_causes(records))
    want_recent = expected_causes(records, since=NOW - timedelta(minutes=RECENT))
    assert {k: v for k, v in recent.items() if v} == dict(want_recent)
    assert any(cause == "unclassified" for _step, cause in all_time)  # old rows are counted


def test_share_without_a_specific_cause_counts_generic_and_unclassified(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    counts = expected_causes(records)
    for row in view.specific:
        step_counts = {c: n for (s, c), n in counts.items() if s == row["step_id"]}
        unspecific = sum(
            n for c, n in step_counts.items() if c == "unclassified" or c in GENERIC_CAUSES
        )
        assert row["failing"] == sum(step_counts.values())
        assert row["no_specific_share"] == pytest.approx(unspecific / row["failing"])
        assert row["unclassified"] == step_counts.get("unclassified", 0)


def test_next_run_share_is_the_run_after_the_last_run_showing_the_cause(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_uid, step), runs in runs_by(records).items():
        last_index: dict[str, int] = {}
        for i, r in enumerate(runs):
            if r.passed is False:
                last_index[r.cause or "unclassified"] = i
        for cause, i in last_index.items():
            counts = want[(step, cause)]
            counts[0] += 1
            if i + 1 < len(runs):
                counts[1] += 1
                counts[2] += bool(runs[i + 1].passed)
    got = {
        (r["step_id"], r["cause"]): [r["students"], r["followed"], r["passed_next"]]
        for r in view.next_runs
    }
    assert got == dict(want)
    for row in view.next_runs:
        assert row["never_helped"] == (row["followed"] > 0 and row["passed_next"] == 0)


def test_stuck_students_match_the_rule_k_in_a_row_or_n_minutes_without_a_pass(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    want = {}
    for (uid, step), runs in runs_by(records).items():
        passes = [i for i, r in enumerate(runs) if r.passed]
        streak = runs[passes[-1] + 1 :] if passes else runs
        never = not passes
        if streak and (
            len(streak) >= K or (never and runs[0].at <= NOW - timedelta(minutes=N_MIN))
        ):
            minutes = round((NOW - streak[0].at).total_seconds() / 60, 1)
            want[(uid, step)] = (len(streak), minutes, streak[-1].cause or "unclassified")
    got = {
        (r["user_id"], r["step_id"]): (r["failing_runs"], r["minutes_stuck"], r["last_cause"])
        for r in view.stuck
    }
    assert got == want and want
    minutes = [r["minutes_stuck"] for r in view.stuck]
    assert minutes == sorted(minutes, reverse=True)  # who needs help first, first
    assert all(r["diff"] is not None and r["name"].startswith("Gen Student") for r in view.stuck)


def test_clusters_group_latest_runs_by_code_family_whatever_the_names(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    latest = {key: runs[-1] for key, runs in runs_by(records).items()}
    families: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for (_uid, step), run in latest.items():
        families[(step, run.family)].append(run)

    def no_cause(members) -> bool:
        return all(not m.passed for m in members) and all(
            m.cause is None or m.cause in GENERIC_CAUSES for m in members
        )

    want = sorted(
        (step, len(m), sum(bool(r.passed) for r in m), no_cause(m))
        for (step, _family), m in families.items()
    )
    got = sorted(
        (r["step_id"], r["size"], r["passing"], r["no_specific_cause"]) for r in view.clusters
    )
    assert got == want


def test_attempts_and_time_to_pass_count_students_not_yet_passed(generated):
    store, ta, _ids, records = generated
    view = class_view(store, ta, options())
    want: Counter = Counter()
    for (_uid, step), runs in runs_by(records).items():
        first = next((i for i, r in enumerate(runs) if r.passed), None)
        bucket = "not yet" if first is None else str(min(first + 1, 10)).replace("10", "10+")
        want[(step, bucket)] += 1
    assert {(r["step_id"], r["attempts"]): r["students"] for r in view.attempts} == dict(want)
    step1 = [p for p in view.survival if p["step_id"] == "step1"]
    assert step1[0]["at_risk"] == sum(1 for (_u, s) in runs_by(records) if s == "step1")
    assert all(
        a["still_running"] >= b["still_running"] for a, b in zip(step1, step1[1:], strict=False)
    )


def test_kaplan_meier_keeps_censored_students_at_risk():
    # 4 students: passes at 2 and 5 minutes, one still running at 3, one at 10.
    points = kaplan_meier([(2.0, True), (3.0, False), (5.0, True), (10.0, False)])
    # By hand: S(2) = 1 - 1/4; at 5 two remain at risk (5 and 10): S(5) = 3/4 * (1 - 1/2).
    assert [(p["minutes"], p["still_running"], p["at_risk"]) for p in points] == [
        (0.0, 1.0, 4),
        (2.0, 0.75, 4),
        (5.0, 0.375, 2),
    ]


def test_normalised_code_ignores_names_constants_and_comments_not_the_approach():
    a = "x = out.logits[0, -1]  # mine\nprint(x)"
    b = "scores = model_output.logits[0, -2]\nprint(scores)"
    c = "x = out.logits[0, -1].softmax(dim=-1)\nprint(x)"
    assert normalised_code(a) == normalised_code(b) != normalised_code(c)
    assert normalised_code("x = (") == "(does not parse)"


def test_a_ta_sees_only_the_students_the_scope_allows(generated, monkeypatch):
    store, ta, ids, records = generated
    mine = set(ids[:12])
    monkeypatch.setattr(store, "visible_student_ids", lambda staff_id: mine)
    view = class_view(store, ta, options())
    assert view.students == 12
    got = {
        r["step_id"]: (r["opened"], r["ran"], r["ever_passed"], r["pass_now"]) for r in view.funnel
    }
    assert {s: got[s] for s in STEPS} == expected_funnel(records, mine)
    assert {r["user_id"] for r in view.stuck} <= mine
    assert sum(r["students"] for r in view.attempts if r["step_id"] == "step1") == len(
        {uid for (uid, s) in runs_by(records, mine) if s == "step1"}
    )


def test_a_ta_who_launched_from_moodle_sees_only_the_students_of_that_course(generated):
    store, _ta, ids, records = generated
    issuer = "https://moodle.example.org"
    store.add_lti_platform(
        issuer=issuer, client_id="tool", deployment_id="1", auth_url=f"{issuer}/auth",
        token_url=f"{issuer}/token", keyset_url=f"{issuer}/certs",
    )  # fmt: skip
    course = set(ids[5:14])
    for uid in course:
        store.record_lti_launch(
            uid, issuer=issuer, deployment_id="1", context_id="lab-a", title="", label="",
            role="student",
        )  # fmt: skip
    section_ta = store.create_user("section-ta@example.org", "Sam Section", "password-2", role="ta")
    store.record_lti_launch(
        section_ta.id, issuer=issuer, deployment_id="1", context_id="lab-a", title="", label="",
        role="ta",
    )  # fmt: skip
    view = class_view(store, section_ta, options())
    assert view.students == len(course)
    got = {
        r["step_id"]: (r["opened"], r["ran"], r["ever_passed"], r["pass_now"]) for r in view.funnel
    }
    assert {s: got[s] for s in STEPS} == expected_funnel(records, course)
    assert {r["user_id"] for r in view.stuck} <= course


def test_projection_mode_shows_pseudonyms_no_code_and_hides_counts_under_five(generated):
    store, ta, _ids, _records = generated
    view = class_view(store, ta, options(projection=True))
    assert view.stuck and all(not r["name"].startswith("Gen Student") for r in view.stuck)
    assert all(r["name"] == pseudonym(r["user_id"]) for r in view.stuck)
    assert all(r["diff"] is None and r["last_message"] is None for r in view.stuck)
    assert all(r["representative"] is None for r in view.clusters)
    counts = [r["students_all"] for r in view.causes] + [r["size"] for r in view.clusters]
    assert None in counts and all(c is None or c == 0 or c >= 5 for c in counts)
    plain = class_view(store, ta, options())
    assert any(0 < r["students_all"] < 5 for r in plain.causes)


def test_a_student_is_refused_the_class_view(generated):
    store, _ta, ids, _records = generated
    with pytest.raises(ClassViewRefused):
        class_view(store, store.user(ids[0]), options())
    with pytest.raises(ClassViewRefused):
        class_view(store, None, options())


def test_class_report_prints_the_figures_for_staff_and_refuses_a_student(tmp_path, capsys):
    import json

    from workbook.__main__ import main

    path = tmp_path / "class.db"
    with Store(path, question_ids=content.question_ids(), step_ids=content.step_ids()) as store:
        store.create_user("ta@example.org", "Tina TA", "password-1", role="ta")
        ids, records = generate_class(store, 12, 15, seed=5, now=NOW, minutes=30)
        student_email = store.user(ids[0]).email
    assert main(["--db", str(path), "class-report", "--as", "ta@example.org", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    funnel = {
        r["step_id"]: (r["opened"], r["ran"], r["ever_passed"], r["pass_now"])
        for r in report["funnel"]
    }
    assert {s: funnel[s] for s in STEPS} == expected_funnel(records)
    assert {(r["step_id"], r["cause"]): r["students_all"] for r in report["causes"]} == dict(
        expected_causes(records)
    )
    assert {"next_runs", "stuck", "clusters", "writing"} <= set(report)
    assert main(["--db", str(path), "class-report", "--as", "ta@example.org"]) == 0
    text = capsys.readouterr().out
    assert "Progress per step" in text and "Stuck now" in text
    assert main(["--db", str(path), "class-report", "--as", student_email, "--json"]) == 1
    refused = capsys.readouterr()
    assert refused.out == "" and "course staff" in refused.err


def test_every_class_view_query_reads_the_work_tables_through_an_index(generated):
    """No figure scans a whole work table: each query's plan searches an index."""
    store, ta, _ids, _records = generated
    statements: list[str] = []
    connection = store._db().conn
    connection.set_trace_callback(statements.append)
    try:
        class_view(store, ta, options())
    finally:
        connection.set_trace_callback(None)
    queries = [q for q in statements if "cell_revisions" in q or "exports" in q]
    assert len(queries) >= 8
    keywords = {"WHERE", "JOIN", "ON", "GROUP", "ORDER", "LEFT", "WINDOW"}
    for query in queries:
        # The work tables and their aliases in this query ("cell_revisions c" -> c).
        names = {"cell_revisions", "exports"} | {
            alias
            for alias in re.findall(r"\b(?:cell_revisions|exports)\s+(?:AS\s+)?(\w+)", query)
            if alias.upper() not in keywords
        }
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {query}")]
        scans = [
            step
            for step in plan
            if step.startswith("SCAN ") and step.split()[1] in names and "INDEX" not in step
        ]
        assert not scans, (query, plan)
