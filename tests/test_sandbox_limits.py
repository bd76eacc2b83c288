"""Hosted mode: each student's sandbox is bounded as a whole (issue 12, point 3).

Each test is a real attempt from inside a sandboxed kernel to get past one ceiling by
spreading over processes, files or time, followed by a check that another student's kernel
kept answering (latency printed). As root the cgroups enforce memory, processes and CPU; as an
unprivileged user the app's watchdog does (``test_sandbox_unprivileged.py`` runs this file
that way too).
"""

from __future__ import annotations

import textwrap

import pytest
from sandbox_support import (
    AS_ROOT,
    WHO,
    hosted_fixture,
    needs_sandbox,
    rss_mb,
    sandbox_processes,
    still_answers,
    text_of,
    value_of,
    wait_until,
)

pytestmark = [pytest.mark.slow, needs_sandbox]

MEMORY_MB = 768
HOME_MB = 40
TMP_MB = 64
OUTPUT_KB = 256
CPU_BUDGET_S = 600


hosted = hosted_fixture(
    cell_timeout_s=40,
    kernel_memory_mb=MEMORY_MB,
    kernel_home_mb=HOME_MB,
    kernel_tmp_mb=TMP_MB,
    cell_max_output_kb=OUTPUT_KB,
    kernel_cpu_budget_s=CPU_BUDGET_S,
    # The watchdog's home quota is what this file tests; the per-student filesystem
    # that holds it as root is tested in test_home_quota.py.
    kernel_home_images=False,
)


@pytest.fixture
def alice(hosted):
    kernel = hosted[0].kernel_for("alice")
    yield kernel
    kernel.restart()  # every test starts from a fresh kernel


@pytest.fixture(scope="module")
def bob(hosted):
    return hosted[0].kernel_for("bob")


def test_memory_spread_over_child_processes_hits_one_ceiling(alice, bob):
    # Four children of 300 MB each: every one is under the per-process limit, together
    # they are far over the sandbox's 768 MB.
    code = textwrap.dedent(
        """
        import subprocess, sys
        hog = "block = bytearray(b'\\x01') * (300 * 1024 * 1024); import time; time.sleep(8)"
        children = [subprocess.Popen([sys.executable, '-c', hog]) for _ in range(4)]
        [child.wait() for child in children]
        """
    )
    result = alice.execute(code)
    print(f"[{WHO}] status {result.status}: {result.message} {text_of(result)[-200:]}")
    assert "memory" in result.message and f"{MEMORY_MB} MB" in result.message
    if result.status == "ok":  # as root the cgroup killed children; the kernel lived on
        assert -9 in value_of(result)  # the children's return codes
    else:
        assert result.status == "died"
    still_answers(bob, "after the memory attempt")
    assert alice.execute("1").status == "ok"


def test_tmp_is_a_bounded_folder(alice, bob):
    code = textwrap.dedent(
        """
        import errno, os
        written, error = 0, None
        try:
            for i in range(20):
                with open(f'/tmp/fill{i}', 'wb') as f:
                    f.write(b'x' * (10 * 1024 * 1024))
                written += 10
        except OSError as exc:
            error = errno.errorcode[exc.errno]
        for name in os.listdir('/tmp'):
            if name.startswith('fill'):
                os.remove('/tmp/' + name)
        (written, error)
        """
    )
    written, error = value_of(alice.execute(code))
    assert written <= TMP_MB and error == "ENOSPC"
    still_answers(bob, "after filling /tmp")


def test_home_quota_refuses_the_write_that_would_pass_it(alice, bob):
    # Files of 5 MB, each far below the per-file cap, add up past the home quota: the file
    # limit follows the room left, so the write that would pass it fails and the kernel lives.
    code = textwrap.dedent(
        """
        import time
        for i in range(60):
            with open(f'blob{i}', 'wb') as f:
                f.write(b'x' * (5 * 1024 * 1024))
            time.sleep(0.2)
        """
    )
    result = alice.execute(code)
    used_mb = sum(f.stat().st_blocks * 512 for f in alice.cwd.glob("blob*")) / 2**20
    print(f"[{WHO}] home held {used_mb:.0f} MB when the write was refused: {result.message}")
    assert result.status == "error" and "File too large" in str(result.outputs)
    assert "your folder may hold" in result.message and f"{HOME_MB} MB" in result.message
    assert used_mb <= HOME_MB and alice.is_alive()
    # The same kernel may tidy up.
    tidy = alice.execute("import glob, os\nfor name in glob.glob('blob*'):\n    os.remove(name)")
    assert tidy.status == "ok" and not list(alice.cwd.glob("blob*"))
    still_answers(bob, "after the home quota")


def test_the_hard_cpu_limit_is_set_and_cannot_be_lifted(alice, bob):
    code = textwrap.dedent(
        """
        import resource, subprocess, sys
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY,) * 2)
            lifted = True
        except (ValueError, OSError):
            lifted = False
        child = subprocess.run(
            [sys.executable, '-c', 'import resource; print(resource.getrlimit(0)[1])'],
            capture_output=True, text=True,
        ).stdout.strip()
        (hard, lifted, int(child))
        """
    )
    hard, lifted, child_hard = value_of(alice.execute(code))
    assert hard == CPU_BUDGET_S and child_hard == CPU_BUDGET_S and not lifted
    still_answers(bob)


def _students_processes(kernel) -> list[dict[str, str]]:
    return [
        p
        for p in sandbox_processes(kernel)
        if p["Name"] != "bwrap" and not p["State"].startswith("Z")  # a zombie is gone
    ]


def test_background_processes_cannot_keep_burning_cpu(hosted, alice, bob):
    pool, settings = hosted
    started = alice.execute(
        "import subprocess, sys\n"
        "spinner = subprocess.Popen([sys.executable, '-c', 'while True: pass'])"
    )
    assert started.status == "ok"
    # The cell has returned; the spinner keeps going until the app stops it.
    # Watched from the app's side: running a cell meanwhile would let the spinner off.
    assert wait_until(lambda: len(_students_processes(alice)) == 1, 30)
    assert value_of(alice.execute("spinner.wait()")) == -9
    assert alice.execute("1").status == "ok"  # the kernel itself stays
    if AS_ROOT:  # and while a cell runs, the cgroup caps the whole sandbox's CPU
        quota = alice._cgroups.paths["cpu"] / "cpu.cfs_quota_us"
        period = alice._cgroups.paths["cpu"] / "cpu.cfs_period_us"
        assert int(quota.read_text()) == settings.kernel_cpus * int(period.read_text())
    still_answers(bob, "after a background spinner")

    # A thread of the kernel itself: only stopping the kernel ends it; the student is told.
    alice.execute(
        "import threading\n"
        "def spin():\n"
        "    while True:\n"
        "        pass\n"
        "threading.Thread(target=spin, daemon=True).start()"
    )
    assert wait_until(lambda: not alice.is_alive(), 30)
    result = pool.kernel_for("alice").execute("spinner")
    assert "kept using the CPU" in result.message and "Run all above" in result.message
    still_answers(bob, "after a background thread")


def test_cell_output_is_capped_on_arrival(alice, bob):
    before = rss_mb()
    many = alice.execute("for i in range(50_000):\n    print('y' * 1000)")  # 50 MB, many messages
    one = alice.execute("print('z' * 10_000_000)")  # 10 MB in one message
    grown = rss_mb() - before
    print(f"[{WHO}] app memory grew by {grown:.0f} MB while 60 MB of output were printed")
    for result in (many, one):
        text = text_of(result)
        assert result.status == "ok", text[-2000:]
        assert "output truncated" in text and f"{OUTPUT_KB} KB" in result.message
        assert len(text) < OUTPUT_KB * 1024 + 1000
    assert grown < 200
    still_answers(bob, "after an output flood")
