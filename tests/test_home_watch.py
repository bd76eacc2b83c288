"""The home quota without a home image: a file limit that follows the room left, and a stop.

As root with ``WORKBOOK_KERNEL_HOME_IMAGES=0`` here, and as an ordinary user when
``test_sandbox_unprivileged.py`` re-runs this file, real sandboxed kernels run the attacks of
``bench/_home_attacks.py``; each must leave at most the quota plus the documented margin
(``home_watch.MARGIN_MB``, ``MARGIN_FILES``). The unit tests drive the watch and the seccomp
filter against real processes and the real Linux kernel.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox_support import WHO, hosted_fixture, needs_sandbox, value_of, wait_until

from bench._home_attacks import ATTACKS, on_disk, setup_cell
from workbook.kernels import home_inotify, home_watch, write_filter

MB = 2**20
QUOTA_MB = 64
FILES = 2000


def _fsize(pid: int) -> int:
    """The hard file size limit of ``pid``, as Linux shows it to anyone."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max file size"):
            hard = line.split()[4]
            return 2**63 if hard == "unlimited" else int(hard)
    raise AssertionError(f"no file size limit in /proc/{pid}/limits")


# ---------------------------------------------------------------- the seccomp filter
_FILTERED = """
import ctypes, errno, os, sys
prog = sys.stdin.buffer.read()

class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, as bubblewrap does
buf = ctypes.create_string_buffer(prog, len(prog))
assert libc.prctl(22, 2, ctypes.byref(Prog(len(prog) // 8, ctypes.cast(buf, ctypes.c_char_p)))) == 0
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
out = []
keep = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(8 << 20))  # FALLOC_FL_KEEP_SIZE
out.append(errno.errorcode.get(ctypes.get_errno()) if keep else "allowed")
os.posix_fallocate(fd, 0, 1 << 20)  # mode 0: allowed, and bound by RLIMIT_FSIZE
out.append(os.fstat(fd).st_size)
out.append(errno.errorcode.get(ctypes.get_errno()) if libc.syscall(425, 8, None) < 0 else "ring")
print(out)
"""


def test_the_write_filter_refuses_fallocate_modes_and_io_uring_but_not_posix_fallocate(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _FILTERED, str(tmp_path / "f.bin")],
        input=write_filter.program(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == str([errno.errorcode[errno.EOPNOTSUPP], MB, "ENOSYS"])
    assert (tmp_path / "f.bin").stat().st_blocks * 512 <= MB + 64 * 1024


# ---------------------------------------------------------------- the watch, real processes
@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _watch(home: Path, proc: subprocess.Popen, **quota) -> tuple[home_watch.HomeWatch, list]:
    stops: list[str] = []
    watch = home_watch.HomeWatch(home, **quota)
    watch.bind(pids=lambda: [proc.pid], stop=lambda: (stops.append("disk"), proc.kill()))
    home_inotify.watcher().watch(watch)
    watch.arm()
    return watch, stops


def test_the_file_limit_follows_the_room_left_and_a_burst_past_the_slack_stops(tmp_path, sleeper):
    watch, stops = _watch(tmp_path, sleeper, quota_mb=8, max_files=100, max_file_mb=100)
    try:
        assert _fsize(sleeper.pid) == 8 * MB - watch.usage()[0] // 4096 * 4096
        (tmp_path / "a.bin").write_bytes(b"x" * (6 * MB))
        # inotify tells the watcher; the sleeping process may now grow a file by 2 MB at most.
        assert wait_until(lambda: _fsize(sleeper.pid) <= 2 * MB, tick=0.02)
        (tmp_path / "b.bin").write_bytes(b"x" * (3 * MB))  # over the quota, within the slack
        assert wait_until(lambda: _fsize(sleeper.pid) == home_watch.FLOOR_BYTES, tick=0.02)
        assert stops == [] and sleeper.poll() is None
        (tmp_path / "c.bin").write_bytes(b"x" * ((home_watch.STOP_SLACK_MB + 1) * MB))
        assert wait_until(lambda: stops == ["disk"], tick=0.02)
        assert sleeper.wait(timeout=10) == -9
        assert (tmp_path / "c.bin").exists()  # nothing deleted
    finally:
        home_inotify.watcher().forget(watch)


def test_too_many_files_stop_the_sandbox(tmp_path, sleeper):
    watch, stops = _watch(tmp_path, sleeper, quota_mb=8, max_files=50, max_file_mb=100)
    try:
        for i in range(50 + home_watch.STOP_SLACK_FILES + 1):
            (tmp_path / f"{i}").touch()
        assert wait_until(lambda: stops == ["disk"], tick=0.02)
    finally:
        home_inotify.watcher().forget(watch)


def test_a_kernel_started_over_the_quota_may_delete_and_gets_no_room(tmp_path, sleeper):
    for i in range(3):
        (tmp_path / f"{i}.bin").write_bytes(b"x" * MB)
    watch, stops = _watch(tmp_path, sleeper, quota_mb=2, max_files=100, max_file_mb=100)
    try:
        assert watch.started_over and _fsize(sleeper.pid) == home_watch.FLOOR_BYTES
        (tmp_path / "0.bin").unlink()
        (tmp_path / "1.bin").unlink()
        assert wait_until(lambda: watch.usage()[0] < 2 * MB, tick=0.02)
        assert stops == [] and sleeper.poll() is None
    finally:
        home_inotify.watcher().forget(watch)


def test_the_limit_is_lowered_on_a_process_of_another_user_when_the_app_is_root(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root starts a process as another user")
    uid = 65534
    other = subprocess.Popen(["sleep", "60"], user=uid, group=uid, extra_groups=[])
    try:
        from workbook.kernels import file_limit

        file_limit.lower([other.pid], 3 * MB, uid)
        assert wait_until(lambda: _fsize(other.pid) == 3 * MB, tick=0.02)
    finally:
        other.kill()
        other.wait()


# ---------------------------------------------------------------- attacks, real kernels
hosted = hosted_fixture(
    cell_timeout_s=120,
    kernel_home_mb=QUOTA_MB,
    kernel_home_files=FILES,
    kernel_max_file_mb=100,
    kernel_home_images=False,
    spare_kernels=0,
)


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_leaves_at_most_the_quota_plus_the_margin(hosted, name):
    pool, settings = hosted
    student = f"s{list(ATTACKS).index(name)}"
    kernel = pool.kernel_for(student)
    assert kernel.execute(setup_cell(settings.kernel_home_mb)).status == "ok"
    result = kernel.execute(ATTACKS[name])
    time.sleep(0.5)  # a stop may come just after the cell
    left, entries = on_disk(kernel.home)
    print(f"[{WHO}] {name}: {left / MB:.1f} MB, {entries} entries; {result.status}")
    assert left <= (settings.kernel_home_mb + home_watch.MARGIN_MB) * MB
    assert entries <= settings.kernel_home_files + home_watch.MARGIN_FILES
    told = result.message or pool.kernel_for(student).execute("1").message
    if result.status != "ok":
        # Either the write was refused, or the kernel was stopped: the student reads which.
        assert "your folder may hold" in told or "your files grew past" in told, told


@pytest.mark.slow
@needs_sandbox
def test_a_full_folder_can_be_tidied_from_the_notebook_and_written_again(hosted):
    pool, settings = hosted
    kernel = pool.kernel_for("tidy")
    full = kernel.execute(f"open('full.bin', 'wb').write(b'x' * ({settings.kernel_home_mb} << 20))")
    assert full.status == "error" and "your folder may hold" in full.message
    assert "File too large" in str(full.outputs)
    # A process started now (inside the sandbox's namespaces) inherits the lowered limit.
    child = kernel.execute(
        "import subprocess, sys, time\n"
        "probe = 'import resource; print(resource.getrlimit(resource.RLIMIT_FSIZE)[1])'\n"
        "for _ in range(100):\n"
        "    limit = int(subprocess.run([sys.executable, '-c', probe],\n"
        "                               capture_output=True, text=True).stdout)\n"
        f"    if limit <= {home_watch.FLOOR_BYTES}:\n"
        "        break\n"
        "    time.sleep(0.05)\n"
        "limit"
    )
    assert value_of(child) == home_watch.FLOOR_BYTES
    kernel.execute("import os\nos.remove('full.bin')")
    kernel = pool.restart("tidy")  # unprivileged, only a new kernel gets its room back
    again = kernel.execute("open('again.bin', 'wb').write(b'y' * (8 << 20))")
    assert again.status == "ok", again.outputs
    assert (kernel.home / "again.bin").stat().st_size == 8 * MB


# ---------------------------------------------------------------- what the student reads
def test_a_refused_write_is_explained_with_the_folders_limits():
    from workbook.config import Settings
    from workbook.kernels.notices import cell_error_message, over_quota_notice

    s = Settings(kernel_home_mb=321, kernel_home_files=77, kernel_max_file_mb=55)
    for evalue in ("[Errno 27] File too large", "[Errno 28] No space left on device"):
        told = cell_error_message(s, {"ename": "OSError", "evalue": evalue})
        assert "321 MB" in told and "77 files" in told and "55 MB" in told
        assert "os.remove" in told
    assert cell_error_message(s, {"ename": "OSError", "evalue": "[Errno 2] No such file"}) == ""
    assert '"File too large"' in over_quota_notice(s, image=False)
    assert '"No space left on device"' in over_quota_notice(s, image=True)
