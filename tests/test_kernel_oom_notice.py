"""A kernel's run tells of each process its memory cgroup killed, once (no real kernel)."""

from __future__ import annotations

from workbook.config import Settings
from workbook.kernels.kernel import StudentKernel


class _Cgroups:
    """Stands in for a sandbox's cgroups: only the OOM-kill counter is read."""

    def __init__(self) -> None:
        self.kills = 0
        self.reads = 0

    def oom_kills(self) -> int:
        self.reads += 1
        return self.kills


def _kernel(tmp_path, monkeypatch) -> tuple[StudentKernel, _Cgroups]:
    settings = Settings(work_dir=tmp_path, kernel_memory_mb=768)
    kernel = StudentKernel("ada", settings, cwd=tmp_path / "ada")
    cgroups = _Cgroups()
    kernel._cgroups = cgroups  # type: ignore[assignment]
    monkeypatch.setattr(kernel, "is_alive", lambda: True)
    return kernel, cgroups


def test_a_kill_is_told_once_and_the_counter_read_once_per_run(tmp_path, monkeypatch):
    kernel, cgroups = _kernel(tmp_path, monkeypatch)
    assert kernel._limit_notice() == ""
    cgroups.kills = 1
    reads = cgroups.reads
    notice = kernel._limit_notice()
    assert f"{kernel.settings.kernel_memory_mb} MB" in notice
    assert cgroups.reads == reads + 1
    assert kernel._limit_notice() == ""  # the same kill is not told again
    cgroups.kills = 2
    assert kernel._limit_notice() == notice


def test_no_cgroups_or_no_kernel_says_nothing(tmp_path, monkeypatch):
    kernel, cgroups = _kernel(tmp_path, monkeypatch)
    cgroups.kills = 3
    monkeypatch.setattr(kernel, "is_alive", lambda: False)
    assert kernel._limit_notice() == ""
    kernel._cgroups = None
    monkeypatch.setattr(kernel, "is_alive", lambda: True)
    assert kernel._limit_notice() == ""
