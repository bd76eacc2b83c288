"""How many kernels fit, and how many spares to keep: the formulas on given numbers."""

from __future__ import annotations

import math

import pytest

from workbook.config import Settings, SettingsError
from workbook.kernels import capacity


@pytest.mark.parametrize(
    ("available", "reserve", "per_kernel"),
    [(24_000, 2048, 450), (16_384, 2048, 340), (8_000, 1000, 700), (3_000, 2048, 400)],
)
def test_the_cap_is_what_is_left_after_the_reserve_divided_by_one_kernel(
    available, reserve, per_kernel
):
    expected = math.floor((available - reserve) / per_kernel)
    assert capacity.kernel_cap(available, reserve, per_kernel) == expected
    # One more kernel would not fit in what is left; the cap itself does.
    assert capacity.kernel_cap(available, reserve, per_kernel) * per_kernel <= available - reserve
    assert (expected + 1) * per_kernel > available - reserve


def test_a_machine_with_less_than_the_reserve_still_serves_one_student():
    assert capacity.kernel_cap(1_000, 2048, 450) == 1
    with pytest.raises(ValueError, match="positive"):
        capacity.kernel_cap(1_000, 0, 0)


def test_the_spares_follow_the_arrivals_but_never_drop_below_the_setting():
    assert capacity.spare_target(2, 0) == 2
    assert capacity.spare_target(2, 9) == 9
    assert capacity.spare_target(0, 9) == 0  # WORKBOOK_SPARE_KERNELS=0: no spares at all


def test_sizing_counts_only_the_arrivals_of_the_last_window():
    sizing = capacity.Sizing(None, 1000, 2, available=10_000)
    window = capacity.ARRIVAL_WINDOW_S
    for when in (0.0, 10.0, 20.0, 30.0, 40.0):
        sizing.arrived(now=when)
    assert sizing.spare_target(now=45.0) == 5
    assert sizing.spare_target(now=25.0 + window) == 2  # the three oldest have left the window
    assert sizing.spare_target(now=100.0 + window) == 2  # the room is quiet: back to the base


def test_sizing_follows_memory_unless_a_cap_is_set():
    sizing = capacity.Sizing(None, 1000, 2, available=10_000)
    start = capacity.DEFAULT_KERNEL_MB
    assert sizing.cap() == math.floor((10_000 - 1000) / start)
    sizing.memory.observe([300.0, 300.0, 300.0, 300.0])
    assert sizing.cap() == math.floor(9000 / 300)  # the first measurement replaces the guess
    assert capacity.Sizing(12, 1000, 2, available=10_000).cap() == 12
    assert capacity.Sizing(None, 1000, 2, gateway=True).cap() == capacity.GATEWAY_MAX_KERNELS


def test_the_kernel_templates_own_memory_is_counted_once():
    # 10,000 MB available at start; then a template takes 450 MB and four kernels forked
    # from it hold 300 MB each (their PSS: their share of its pages, not the template's).
    sizing = capacity.Sizing(None, 1000, 2, available=10_000)
    sizing.observe([300.0] * 4, available=10_000 - 450 - 4 * 300)
    assert sizing.cap() == math.floor((10_000 - 450 - 1000) / 300)
    sizing.observe([300.0] * 4, available=10_000 - 4 * 300)  # the template stopped
    assert sizing.cap() == math.floor((10_000 - 1000) / 300)


def test_the_memory_estimate_rises_at_once_and_falls_slowly():
    estimate = capacity.MemoryEstimate(start_mb=400.0)
    assert estimate.observe([]) == 400.0  # nothing measured: the default stays
    assert estimate.observe([0.0, 400.0]) == 400.0  # a gone process (0) is not a sample
    before = estimate.mb
    risen = estimate.observe([600.0] * 4)
    assert risen == pytest.approx(before + 0.5 * (600.0 - before))
    fallen = estimate.observe([300.0] * 4)
    assert fallen == pytest.approx(risen + 0.1 * (300.0 - risen))
    # Fresh kernels, under half the estimate, do not count: they grow once set up.
    steady = capacity.MemoryEstimate(start_mb=400.0)
    steady.observe([400.0] * 6)
    assert steady.observe([400.0, 500.0, 80.0, 80.0]) == pytest.approx(400.0 + 0.5 * 50.0)
    assert steady.observe([90.0, 100.0]) == pytest.approx(425.0)  # only fresh ones: kept


def _cgroup_v2(root, limit: str, current: int) -> None:
    (root / "memory.max").write_text(limit + "\n")
    (root / "memory.current").write_text(f"{current}\n")


def test_a_cgroup_v2_limit_lower_than_the_machine_is_what_is_available(tmp_path):
    _cgroup_v2(tmp_path, str(8 * 2**30), 2 * 2**30)
    assert capacity.cgroup_headroom_mb(tmp_path, "0::/\n") == 6 * 1024
    own = tmp_path / "app.slice"
    own.mkdir()
    _cgroup_v2(own, str(4 * 2**30), 2**30)  # the app's own cgroup is tighter still
    assert capacity.cgroup_headroom_mb(tmp_path, "0::/app.slice\n") == 3 * 1024


def test_a_cgroup_without_a_limit_leaves_the_machines_memory(tmp_path):
    _cgroup_v2(tmp_path, "max", 2**30)
    assert capacity.cgroup_headroom_mb(tmp_path, "0::/\n") is None
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (v1 / "memory.usage_in_bytes").write_text(f"{2**30}\n")
    assert capacity.cgroup_headroom_mb(tmp_path, "4:memory:/\n0::/\n") is None


def test_a_cgroup_v1_memory_limit_counts(tmp_path):
    own = tmp_path / "memory" / "lab"
    own.mkdir(parents=True)
    (own / "memory.limit_in_bytes").write_text(f"{10 * 2**30}\n")
    (own / "memory.usage_in_bytes").write_text(f"{4 * 2**30}\n")
    assert capacity.cgroup_headroom_mb(tmp_path, "4:memory:/lab\n") == 6 * 1024


def test_available_memory_is_the_lower_of_the_machine_and_the_cgroup(monkeypatch):
    import psutil

    machine = psutil.virtual_memory().available / 2**20
    monkeypatch.setattr(capacity, "cgroup_headroom_mb", lambda: machine / 2)
    assert capacity.available_mb() == pytest.approx(machine / 2, rel=0.05)
    monkeypatch.setattr(capacity, "cgroup_headroom_mb", lambda: None)
    assert capacity.available_mb() > machine / 2


def test_a_kernels_memory_is_its_whole_process_tree(tmp_path):
    import os
    import subprocess
    import sys
    import time

    # A parent and a child that both end by themselves within 20 s.
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(20)']); time.sleep(20)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        alone = capacity.kernels_pss_mb([os.getpid()])[0]  # this test and its children
        assert alone > 0
        # A parent with a child counts both: more than the parent alone.
        import psutil

        parent = psutil.Process(child.pid)
        deadline = time.monotonic() + 10
        while not parent.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        own = parent.memory_full_info().pss / 2**20
        assert capacity.kernel_pss_mb(child.pid) > own
    finally:
        child.kill()
        child.wait()
    assert capacity.kernel_pss_mb(child.pid) == 0.0  # gone
    assert capacity.kernel_pss_mb(None) == 0.0


def test_max_kernels_is_auto_unless_a_number_is_given():
    assert Settings.from_env({}).max_kernels is None
    assert Settings.from_env({"WORKBOOK_MAX_KERNELS": "auto"}).max_kernels is None
    assert Settings.from_env({"WORKBOOK_MAX_KERNELS": "12"}).max_kernels == 12
    with pytest.raises(SettingsError, match="whole number or auto"):
        Settings.from_env({"WORKBOOK_MAX_KERNELS": "many"})
    with pytest.raises(SettingsError, match="whole number or auto"):
        Settings.from_env({"WORKBOOK_MAX_KERNELS": "0"})
    settings = Settings.from_env(
        {"WORKBOOK_MEMORY_RESERVE_MB": "1024", "WORKBOOK_KERNEL_IDLE_WHEN_FULL": "120"}
    )
    assert (settings.memory_reserve_mb, settings.kernel_idle_when_full_s) == (1024, 120)


def test_the_cap_follows_memory_freed_or_taken_by_others():
    reserve, start = 1000, 10_000.0
    sizing = capacity.Sizing(None, reserve, 2, available=start)
    assert sizing.cap() == capacity.kernel_cap(start, reserve, capacity.DEFAULT_KERNEL_MB)
    # Three kernels hold 600 MB each; 8,200 MB is available besides: 10,000 in all.
    kernels = [600.0, 600.0, 600.0]
    assert sizing.observe(kernels, available=8_200) == 600.0
    assert sizing.available_mb == 8_200 + sum(kernels)
    assert sizing.cap() == math.floor((8_200 + sum(kernels) - reserve) / 600.0)
    # Another program takes 3,000 MB: the cap falls (the kernels' own growth would not).
    sizing.observe(kernels, available=5_200)
    assert sizing.cap() == math.floor((5_200 + sum(kernels) - reserve) / 600.0)
    # ... and frees it again, and more: the cap rises.
    sizing.observe(kernels, available=12_000)
    assert sizing.cap() == math.floor((12_000 + sum(kernels) - reserve) / 600.0)
    # One kernel grows by 300 MB: available falls by as much, the memory shared is the same.
    grown = [900.0, 600.0, 600.0]
    before = sizing.available_mb
    sizing.observe(grown, available=12_000 - 300)
    assert sizing.available_mb == before


def test_without_any_pss_reading_the_available_memory_is_kept():
    sizing = capacity.Sizing(None, 1000, 2, available=10_000)
    sizing.observe([0.0, 0.0], available=2_000)  # kernels run, but no PSS could be read
    assert sizing.available_mb == 10_000
    sizing.observe([], available=7_000)  # no kernels: what is available is all there is
    assert sizing.available_mb == 7_000
    fixed = capacity.Sizing(5, 1000, 2)
    fixed.observe([600.0], available=100)
    assert fixed.cap() == 5  # WORKBOOK_MAX_KERNELS is not touched by memory
