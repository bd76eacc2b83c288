"""Hosted mode's pieces without a sandbox: output cap, settings, watchdog, students' messages."""

from __future__ import annotations

import subprocess
import time

from workbook.config import Settings
from workbook.kernels import home_watch, limits
from workbook.kernels.collector import Collector as _Collector
from workbook.kernels.kernel import StudentKernel


def _stream(text: str) -> dict:
    return {"msg_type": "stream", "content": {"name": "stdout", "text": text}}


def test_output_past_the_cap_is_dropped_with_one_note():
    collector = _Collector(max_bytes=10_000)
    for _ in range(1_000):
        collector.add(_stream("y" * 1_000))  # 1 MB offered
    text = "".join(o["text"] for o in collector.outputs)
    assert collector.truncated
    assert text.count("output truncated") == 1 and "9 KB" in text
    assert len(text) < 10_000 + 200
    collector.add({"msg_type": "display_data", "content": {"data": {"text/plain": "late"}}})
    assert "late" not in str(collector.outputs)


def test_output_under_the_cap_is_kept_whole_and_clear_output_resets_the_count():
    collector = _Collector(max_bytes=10_000)
    for _ in range(50):
        collector.add(_stream("z" * 900))
        collector.add({"msg_type": "clear_output", "content": {"wait": False}})
    collector.add(_stream("done"))
    assert not collector.truncated
    assert collector.outputs == [{"output_type": "stream", "name": "stdout", "text": "done"}]


def test_one_huge_display_is_truncated_too():
    collector = _Collector(max_bytes=1_000)
    collector.add(_stream("before\n"))
    content = {"data": {"text/html": "<b>" * 10_000}, "metadata": {}}
    collector.add({"msg_type": "display_data", "content": content})
    assert collector.truncated
    assert collector.outputs[0]["text"] == "before\n"
    assert all(o["output_type"] == "stream" for o in collector.outputs)


def test_hosted_limits_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "WORKBOOK_SANDBOX_UID": "4242",
            "WORKBOOK_KERNEL_CPUS": "2",
            "WORKBOOK_KERNEL_CPU_BUDGET_S": "900",
            "WORKBOOK_KERNEL_TMP_MB": "32",
            "WORKBOOK_KERNEL_HOME_MB": "64",
            "WORKBOOK_KERNEL_HOME_FILES": "300",
            "WORKBOOK_CELL_MAX_OUTPUT_KB": "16",
        }
    )
    assert (settings.sandbox_uid, settings.kernel_cpus, settings.kernel_cpu_budget_s) == (
        4242,
        2,
        900,
    )
    assert (settings.kernel_tmp_mb, settings.kernel_home_mb, settings.kernel_home_files) == (
        32,
        64,
        300,
    )
    assert settings.cell_max_output_kb == 16


def test_watchdog_stops_a_tree_whose_home_keeps_growing_past_its_quota(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        guard = limits.Guard(
            root_pid=sleeper.pid,
            home=home,
            memory_mb=1024,
            home_mb=1,
            home_files=100,
            check_memory=False,
        )
        now = time.monotonic()
        (home / "a.bin").write_bytes(b"x" * 2_000_000)  # over the quota, within the slack
        guard.check(limits._processes(), now)
        assert sleeper.poll() is None and guard.reason() == ""
        # and growing past the slack
        (home / "b.bin").write_bytes(b"x" * (home_watch.STOP_SLACK_MB * 2**20))
        for tick in range(1, 5):  # the home is walked every few ticks
            guard.check(limits._processes(), now + tick)
        assert guard.reason() == "disk"
        assert sleeper.wait(timeout=10) == -9
    finally:
        sleeper.kill()


def test_watchdog_leaves_a_home_over_quota_alone_while_it_shrinks(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for i in range(3):
        (home / f"{i}.bin").write_bytes(b"x" * 1_000_000)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        guard = limits.Guard(
            root_pid=sleeper.pid,
            home=home,
            memory_mb=1024,
            home_mb=1,
            home_files=100,
            check_memory=False,
        )
        now = time.monotonic()
        for tick in range(10):
            if tick == 3:
                (home / "0.bin").unlink()  # the student tidies up
            guard.check(limits._processes(), now + tick)
        assert guard.reason() == "" and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_students_message_names_the_limit_that_stopped_the_kernel(tmp_path):
    settings = Settings(kernel_memory_mb=768, kernel_home_mb=40, kernel_cpu_budget_s=600)
    kernel = StudentKernel("ada", settings, cwd=tmp_path)
    guard = limits.Guard(
        root_pid=1, home=tmp_path, memory_mb=768, home_mb=40, home_files=10, check_memory=True
    )
    kernel._guard = guard
    expected = {
        "memory": "768 MB of memory",
        "disk": "40 MB",
        "cpu": "kept using the CPU",
    }
    for reason, words in expected.items():
        guard._reason = reason
        idle = kernel._death_notice(while_idle=True)
        assert words in idle and "stopped while you were away" in idle
        assert "Run all above" in idle
        assert words in kernel._death_notice(while_idle=False)
    guard._reason = ""
    guard.kernel_cpu_s = 599.5
    assert "CPU time budget (600 s)" in kernel._death_notice(while_idle=True)
    guard.kernel_cpu_s = 1.0
    assert "crashed" in kernel._death_notice(while_idle=True)
