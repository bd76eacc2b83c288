"""The load test's report: every step, both rounds, and the fair-share ratios (no kernels)."""

from __future__ import annotations

from bench import load


def _figures(students: int, seconds: float) -> load.Figures:
    figures = load.Figures(students=students)
    for step in load.STEPS:
        figures.times[step] = [seconds] * students
    figures.wall = seconds * len(load.STEPS)
    return figures


def test_the_report_shows_each_step_for_one_student_and_the_class(capsys):
    one, many = _figures(1, 1.0), _figures(4, 2.0)
    many.errors.append("student1@example.org step3: check failed")
    load.report(one, many, {"cold setup": 3.0, "restart + run all above": 1.5}, spares=2)
    out = capsys.readouterr().out
    for step in load.STEPS:
        assert step in out
    # 4 students took 18 s against 4 x 9 s alone: 0.50 x; on fresh kernels 4 x 11 s.
    assert "= 0.50 x" in out
    assert f"{18 / (4 * 11):.2f} x" in out
    assert "ERROR student1@example.org step3" in out


def test_percentiles_pick_the_values_students_saw():
    values = [float(v) for v in range(1, 21)]
    # Nearest rank on 20 sorted values: the median is one of the middle two, p95 the 19th.
    assert load._pct(values, 0.5) in (10.0, 11.0)
    assert load._pct(values, 0.95) == 19.0
    assert load._pct(list(reversed(values)), 0.95) == 19.0
    assert load._row([]) == "-"


def test_a_round_that_starts_without_its_spares_says_so(capsys):
    from types import SimpleNamespace

    wb = SimpleNamespace(
        settings=SimpleNamespace(spare_kernels=2),
        kernels=SimpleNamespace(spares_ready=lambda: 1),
    )
    assert load._wait_for_spares(wb, timeout_s=0) is False
    assert "WARNING: only 1 of 2 spare kernels were ready" in capsys.readouterr().out
    wb.kernels.spares_ready = lambda: 2
    assert load._wait_for_spares(wb, timeout_s=0) is True
    assert capsys.readouterr().out == ""


def test_the_arrival_report_shows_refusals_and_setup_times_beside_one_student(capsys):
    from bench import _arrivals

    one = _arrivals.Arrivals(students=1, setup=[0.4], to_step2=[1.2], cap=40, kernel_mb=400.0)
    many = _arrivals.Arrivals(
        students=3, setup=[0.5, 0.9, 3.0], to_step2=[2.0, 2.5, 5.0], cap=38, kernel_mb=420.0
    )
    many.refused.append("student3@example.org: WorkbookError: busy, try again")
    off = _arrivals.Arrivals(students=1, setup=[4.8], to_step2=[6.1], peak_pss_mb=900.0)
    _arrivals.report(one, many, 60.0, working=10, cold_one=4.5, off=off)
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["refused (told to try again)"].split()[-2:] == ["0", "1"]
    assert load._row(many.setup) in lines["setup cell p50/p95/max s"]
    assert load._row(one.setup) in lines["setup cell p50/p95/max s"]
    assert "3 arrive over 60 s (10 working)" in out
    assert "38 / 420 MB" in out and "setup 4.50 s" in out
    assert "ERROR student3@example.org" in out
    [template_off] = [line for line in out.splitlines() if "WORKBOOK_KERNEL_TEMPLATE=0" in line]
    assert load._row(off.setup) in template_off and load._row(off.to_step2) in template_off
