"""Hosted mode: each test is a real attempt from inside a sandboxed student kernel.

Every attempt is followed by a check that another student's kernel (``bob``) kept answering,
with its latency printed. ``test_sandbox_unprivileged.py`` runs this file again as an
unprivileged user when the suite runs as root, so both ways are always covered.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sandbox_support import (
    AS_ROOT,
    PROBLEM,
    ROOT,
    hosted_pool,
    needs_sandbox,
    rss_mb,
    sandbox_processes,
    still_answers,
    text_of,
    value_of,
)

from workbook.config import Settings
from workbook.kernels import home_quota, sandbox
from workbook.kernels.errors import KernelDied, SandboxUnavailable
from workbook.kernels.pool import KernelPool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hosted(tmp_path_factory):
    pool, settings = hosted_pool(tmp_path_factory)
    yield pool, settings
    pool.shutdown_all()


@pytest.fixture(scope="module")
def alice(hosted):
    return hosted[0].kernel_for("alice")


@pytest.fixture(scope="module")
def bob(hosted):
    kernel = hosted[0].kernel_for("bob")
    kernel.execute("open('notes.txt', 'w').write('private')")
    return kernel


def _fails(kernel, code: str) -> dict:
    result = kernel.execute(code)
    assert result.status == "error", result.outputs
    return result.outputs[-1]


@needs_sandbox
def test_reading_the_database_file_fails(hosted, alice, bob):
    _, settings = hosted
    _fails(alice, f"open({str(settings.db_path.resolve())!r}).read()")
    _fails(alice, f"open({str(ROOT / 'workbook' / 'config.py')!r}).read()")
    still_answers(bob)


@needs_sandbox
def test_another_students_folder_cannot_be_listed_or_read(hosted, alice, bob):
    assert (bob.cwd / "notes.txt").read_text() == "private"
    _fails(alice, f"import os\nos.listdir({str(bob.cwd)!r})")
    _fails(alice, f"open({str(bob.cwd / 'notes.txt')!r}).read()")
    listing = alice.execute("import os\nsorted(os.listdir('/home'))")
    assert listing.outputs[-1]["data"]["text/plain"] == "['student']"
    still_answers(bob)


@needs_sandbox
def test_no_tcp_connection_even_to_localhost(alice, bob):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        error = _fails(
            alice, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"
        )
        assert error["ename"] in {"ConnectionRefusedError", "OSError", "TimeoutError"}
    finally:
        server.close()
    still_answers(bob)


@needs_sandbox
def test_writing_outside_the_working_folder_fails_but_inside_works(alice, bob):
    for target in (
        "/usr/evil.txt",
        "/etc/evil.txt",
        str(ROOT / "evil.txt"),
        "/opt/workbook/evil.py",
    ):
        result = alice.execute(f"open({target!r}, 'w').write('x')")
        # Under /tmp a write lands in the sandbox's own private /tmp (a checkout may live
        # there); anywhere else it fails. Either way nothing reaches the host.
        if not target.startswith("/tmp/"):
            assert result.status == "error", result.outputs
        assert not Path(target).exists()
    ok = alice.execute("open('mine.txt', 'w').write('ok')")
    assert ok.status == "ok"
    assert (alice.cwd / "mine.txt").read_text() == "ok"
    still_answers(bob)


@needs_sandbox
def test_a_file_larger_than_the_limit_cannot_be_written(hosted, alice, bob):
    _, settings = hosted
    size = (settings.kernel_max_file_mb + 1) * 1024 * 1024
    error = _fails(alice, f"open('big.bin', 'wb').write(b'0' * {size})")
    assert error["ename"] == "OSError" and "too large" in error["evalue"].lower()
    still_answers(bob)


@needs_sandbox
def test_fork_bomb_allocation_and_loop_fail_while_another_kernel_answers(alice, bob):
    bomb = textwrap.dedent(
        """
        import os, time
        children = []
        try:
            while True:
                pid = os.fork()
                if pid == 0:
                    time.sleep(1)
                    os._exit(0)
                children.append(pid)
        finally:
            print(len(children))
            for pid in children:  # reap, so the next cells have processes again
                os.waitpid(pid, 0)
        """
    )
    result = alice.execute(bomb)
    assert result.status == "error"
    assert result.outputs[-1]["ename"] == "BlockingIOError"
    assert int(result.outputs[0]["text"]) < 64
    still_answers(bob)

    result = alice.execute("import numpy as np\nx = np.ones(50 * 1024**3 // 8)")
    assert result.status == "error" and result.outputs[-1]["ename"] == "MemoryError"
    still_answers(bob)

    result = alice.execute("while True:\n    pass", timeout=2)
    assert result.status == "timeout"
    still_answers(bob)
    assert alice.execute("1").status == "ok"


@needs_sandbox
def test_kernel_has_its_own_pid_namespace(alice):
    result = alice.execute("import os\nlen([p for p in os.listdir('/proc') if p.isdigit()]) < 10")
    assert result.outputs[-1]["data"]["text/plain"] == "True"


@needs_sandbox
def test_sandboxed_kernel_dies_when_the_app_dies(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from workbook.config import Settings
        from workbook.kernels.pool import KernelPool
        pool = KernelPool(Settings(work_dir=Path({str(tmp_path)!r}), sandbox=True))
        kernel = pool.kernel_for("dave")
        kernel.execute("import os; open('pid', 'w').write('x')")
        print(kernel.pid, kernel._ipc_dir, flush=True)
        time.sleep(600)
        """
    )
    app = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid_text, ipc_dir = app.stdout.readline().split()
    bwrap_pid = int(pid_text)
    assert subprocess.run(["pgrep", "-f", ipc_dir], capture_output=True).returncode == 0
    os.kill(bwrap_pid, 0)
    app.send_signal(signal.SIGKILL)
    app.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gone = subprocess.run(["pgrep", "-f", ipc_dir], capture_output=True, text=True)
        try:
            os.kill(bwrap_pid, 0)
        except ProcessLookupError:
            if not gone.stdout.strip():
                break
        time.sleep(0.2)
    else:
        pytest.fail("the sandboxed kernel outlived the app")
    # A killed app cannot unmount its kernels' home images (as root): the next app's pool
    # does, before it starts any kernel, and the student's file is kept in the image.
    left = home_quota.mounts_under(tmp_path)
    restarted = KernelPool(Settings(work_dir=tmp_path, sandbox=True))
    try:
        assert home_quota.mounts_under(tmp_path) == []
        if AS_ROOT and home_quota.available() is None:  # the home was an image
            assert left == [tmp_path.resolve() / "dave"]
        kernel = restarted.kernel_for("dave")
        kept = kernel.execute("open('pid').read()")
        assert kept.outputs[-1]["data"]["text/plain"] == repr("x")
    finally:
        restarted.shutdown_all()


@pytest.mark.skipif(PROBLEM is None, reason="the sandbox works here")
def test_the_reason_the_sandbox_cannot_start_is_clear():
    assert "Hosted mode cannot start" in (PROBLEM or "")


def test_hosted_mode_refuses_to_start_without_bubblewrap(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="bubblewrap"):
            KernelPool(Settings(work_dir=tmp_path, sandbox=True))
    finally:
        sandbox._probe.cache_clear()


@pytest.mark.parametrize("as_root", [True, False])
def test_sandbox_command_hides_the_repository_and_the_network(tmp_path, as_root):
    argv = sandbox.bwrap_argv(
        ["python"],
        home=tmp_path / "h",
        ipc_dir=tmp_path / "ipc",
        sandbox_uid=65534,
        as_root=as_root,
    )
    assert "--unshare-net" in argv and "--share-net" not in argv
    assert "--die-with-parent" in argv
    bound = {argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert str(ROOT) not in bound
    writable = {argv[i + 1] for i, a in enumerate(argv) if a == "--bind"}
    assert writable == {str(tmp_path / "h"), str(tmp_path / "ipc")}
    # The kernel's own user namespace: uid 1000, no capability, no further namespaces.
    inner = argv[argv.index("--unshare-user") :]
    for switch in (["--uid", "1000"], ["--disable-userns"], ["--cap-drop", "ALL"]):
        assert any(inner[i : i + len(switch)] == switch for i in range(len(inner)))
    # As root, the drop to the unprivileged sandbox user comes before that namespace.
    assert ("setpriv" in argv) == as_root
    if as_root:
        assert argv.index("--reuid=65534") < argv.index("--unshare-user")


@needs_sandbox
def test_the_exercise_loads_the_real_model_inside_the_sandbox(hosted, alice):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_engine import resolve

    source = resolve()  # the app builds the cache before kernels read it
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.path)
    with torch.no_grad():
        ids = tokenizer("This weekend I plan to", return_tensors="pt").input_ids
        expected = int(model(ids).logits[0, -1].argmax())  # (V,) -> token id

    setup = textwrap.dedent(
        """
        import torch
        from lm_engine import resolve
        from transformers import AutoModelForCausalLM, AutoTokenizer
        source = resolve()
        tokenizer = AutoTokenizer.from_pretrained(source.path, **source.tokenizer_kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path)
        input_ids = tokenizer("This weekend I plan to", return_tensors="pt").input_ids
        with torch.no_grad():
            model_output = model(input_ids)
        """
    )
    result = alice.execute(setup, timeout=120)
    assert result.status == "ok", result.outputs
    value = alice.inspect(
        "import resource\n__workbook_result__ = {"
        "'top': int(model_output.logits[0, -1].argmax()),"
        "'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}"
    )
    assert value["top"] == expected
    assert value["peak_mb"] < hosted[1].kernel_memory_mb
    print(f"peak RSS of a sandboxed kernel after loading the model: {value['peak_mb']} MB")


# ---------------------------------------------------------------- no privilege (issue 12.1)
_STATUS = (
    "dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines()"
    " if ':\\t' in line)"
)


@needs_sandbox
def test_student_code_holds_no_privilege_on_the_host(hosted, alice, bob):
    _, settings = hosted
    inside = value_of(
        alice.execute(
            "import os, subprocess\n"
            "child = subprocess.Popen(['sleep', '60'])\n"
            f"status = {_STATUS}\n"
            "(os.getuid(), os.geteuid(), os.getgid(), status['CapEff'].strip(),"
            " status['CapBnd'].strip(), status['NoNewPrivs'].strip())"
        )
    )
    uid, euid, gid, cap_eff, cap_bnd, no_new_privs = inside
    assert 0 not in (uid, euid, gid)
    assert int(cap_eff, 16) == 0 and int(cap_bnd, 16) == 0 and no_new_privs == "1"

    # What the host sees: the kernel and the process it started, read from the app's side.
    seen = sandbox_processes(alice)
    students = [p for p in seen if p["Name"] != "bwrap"]
    assert any(p["Name"] == "sleep" for p in students), [p["Name"] for p in seen]
    expected_uid = settings.sandbox_uid if AS_ROOT else os.geteuid()
    for proc in students:
        assert {int(x) for x in proc["Uid"].split()} == {expected_uid}, proc
        assert 0 not in {int(x) for x in proc["Gid"].split()}, proc
        assert int(proc["CapEff"], 16) == 0 and int(proc["CapPrm"], 16) == 0, proc
        assert proc["NoNewPrivs"].strip() == "1", proc
    for proc in seen:
        if proc["pid"] != str(alice.pid):  # bubblewrap's own helpers keep none either
            assert int(proc["CapEff"], 16) == 0, proc
    alice.execute("child.kill(); child.wait()")
    still_answers(bob)


@needs_sandbox
def test_read_only_binds_cannot_be_remounted_or_written(alice, bob):
    import sysconfig

    cache = alice._model_cache()
    site = Path(sysconfig.get_paths()["purelib"])
    # inside path -> where a write would land on the host
    targets = {
        "/etc": Path("/etc"),
        str(site): site,
        "/opt/workbook/lm_engine": ROOT / "lm_engine",
        str(cache): cache,
        "/usr/lib": Path("/usr/lib"),
    }
    tag = f"evil-{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(
        f"""
        import ctypes, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        MS_REMOUNT, MS_BIND = 32, 4096
        attempts = {{}}
        for folder in {list(targets)!r}:
            rc = libc.mount(None, folder.encode(), None, MS_REMOUNT | MS_BIND, None)
            tool = subprocess.run(['mount', '-o', 'remount,rw', folder], capture_output=True)
            try:
                with open(os.path.join(folder, {tag!r}), 'w') as f:
                    f.write('x')
                wrote = True
            except OSError:
                wrote = False
            attempts[folder] = (rc, tool.returncode, wrote)
        attempts
        """
    )
    attempts = value_of(alice.execute(code))
    for folder, (rc, tool_rc, wrote) in attempts.items():
        assert rc == -1 and tool_rc != 0 and not wrote, (folder, rc, tool_rc, wrote)
    for host in targets.values():
        assert not (host / tag).exists()
    still_answers(bob)


@needs_sandbox
def test_the_shadow_file_cannot_be_read(alice, bob):
    error = _fails(alice, "open('/etc/shadow').read()")
    assert error["ename"] == "PermissionError"
    still_answers(bob)


@needs_sandbox
def test_a_setuid_binary_left_in_the_home_gives_no_privilege(hosted, alice, bob):
    code = textwrap.dedent(
        """
        import os, shutil, subprocess
        shutil.copy('/usr/bin/id', 'suid-id')
        os.chmod('suid-id', 0o6755)
        run = subprocess.run(['./suid-id', '-u'], capture_output=True, text=True)
        (os.stat('suid-id').st_mode & 0o6000 == 0o6000, run.stdout.strip())
        """
    )
    bits_set, euid_inside = value_of(alice.execute(code))
    assert euid_inside == "1000"  # nosuid mounts and no-new-privileges: the bit does nothing
    host_file = alice.cwd / "suid-id"
    owner = host_file.stat().st_uid
    assert owner != 0  # so whoever runs it on the host can become this uid at most
    if AS_ROOT and bits_set:
        # Run it on the host as another unprivileged user (through a descriptor: the
        # student's folder is closed to other users).
        fd = os.open(host_file, os.O_PATH)
        try:
            done = subprocess.run(
                ["setpriv", "--reuid=1", "--regid=1", "--clear-groups", f"/proc/self/fd/{fd}"]
                + ["-u"],
                pass_fds=(fd,),
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            os.close(fd)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() in {"1", str(owner)}
        print(f"setuid file left by the student, run by uid 1 on the host: euid {done.stdout}")
    host_file.unlink()
    still_answers(bob)


@needs_sandbox
def test_no_further_user_namespace_can_be_created(alice, bob):
    code = textwrap.dedent(
        """
        import ctypes, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER = 0x10000000
        pid = __import__('os').fork()
        if pid == 0:  # try it in a child: the kernel itself must stay as it is
            __import__('os')._exit(0 if libc.unshare(CLONE_NEWUSER) == 0 else 1)
        own = __import__('os').waitpid(pid, 0)[1] >> 8
        (own, subprocess.run(['unshare', '-U', 'true'], capture_output=True).returncode,
         subprocess.run(['unshare', '-Ur', 'id'], capture_output=True).returncode)
        """
    )
    own, tool, tool_root = value_of(alice.execute(code))
    assert own != 0 and tool != 0 and tool_root != 0
    still_answers(bob)


# ------------------------------------------------- nothing the app reads is theirs (12.2)
@needs_sandbox
def test_a_startup_file_cannot_make_the_app_show_or_read_host_files(hosted, bob, tmp_path):
    pool, settings = hosted
    token = f"TOP-SECRET-{uuid.uuid4().hex}"
    secret = tmp_path / "secret.txt"
    secret.write_text(token)  # readable by the app, never by a sandbox
    home = Path(settings.work_dir) / "carol"
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-swap.py").write_text(
        textwrap.dedent(
            f"""
            import glob, os
            from ipykernel.kernelapp import IPKernelApp
            folders = {{os.path.dirname(IPKernelApp.instance().connection_file)}}
            folders.update(glob.glob('/tmp/wbk-*'))
            for folder in folders:
                for name in ['stderr.log', 'kernel.json', 'stdout.log', 'stderr']:
                    path = os.path.join(folder, name)
                    try:
                        os.remove(path)
                    except OSError:
                        pass
                    os.symlink({str(secret)!r} if name != 'stderr' else '/dev/zero', path)
            try:
                os.write(2, b'x' * (20 * 1024 * 1024))  # a flood of error output
            except OSError:
                pass
            os.write(2, b'\\nstartup says goodbye\\n')
            os._exit(1)
            """
        )
    )
    if AS_ROOT:
        for path in (home / ".ipython").rglob("*"):
            os.chown(path, settings.sandbox_uid, settings.sandbox_uid)
        os.chown(home / ".ipython", settings.sandbox_uid, settings.sandbox_uid)
    before = rss_mb()
    try:
        with pytest.raises(KernelDied) as caught:
            pool.kernel_for("carol")
    finally:
        (startup / "00-swap.py").unlink()
    grown = rss_mb() - before
    message = str(caught.value)
    print(f"app memory grew by {grown:.0f} MB; message of {len(message)} characters")
    assert token not in message
    # The kernel's real error output still shows: its end, or (ipykernel forwards fd 2
    # through a thread that a busy machine may not let finish before the exit) the flood.
    assert "startup says goodbye" in message or "x" * 1000 in message
    assert len(message) < 5000
    assert grown < 200  # bounded, whatever the links point to
    still_answers(bob)


# ------------------------------------------------------------ died while idle (12.5)
@needs_sandbox
def test_a_kernel_that_died_while_idle_says_so_on_the_next_run(hosted, bob):
    pool, _ = hosted

    def kill_kernel_process(kernel) -> None:
        students = [p for p in sandbox_processes(kernel) if p["Name"] != "bwrap"]
        os.kill(int(students[0]["pid"]), signal.SIGKILL)  # as a crash or the OOM killer would
        deadline = time.monotonic() + 15
        while kernel.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not kernel.is_alive()

    erin = pool.kernel_for("erin")
    assert erin.execute("answer = 42").status == "ok"
    kill_kernel_process(erin)
    result = pool.kernel_for("erin").execute("answer")
    assert result.status == "error" and result.outputs[-1]["ename"] == "NameError"
    assert "stopped while you were away" in result.message
    assert "Run all above" in result.message
    assert pool.kernel_for("erin").execute("1").message == ""  # said once

    # The same when the pool's clean-up removed the dead kernel before the student came back.
    kill_kernel_process(pool.kernel_for("erin"))
    assert "erin" in pool.cull_idle()
    result = pool.kernel_for("erin").execute("answer")
    assert "stopped while you were away" in result.message
    assert "Run all above" in result.message
    still_answers(bob)


# ------------------------------------------------------- the exercise still works inside
@needs_sandbox
def test_the_whole_exercise_passes_inside_the_sandbox(tmp_path_factory, bob):
    """Setup, steps 1-6 with their checks, a restart, then "Run all above" and step 6 again."""
    from lm_engine import load_model
    from workbook.exercise import content
    from workbook.exercise.checks import run_check

    # The default limits (4 GB, the real checks' time) on a machine that may be busy.
    pool, _ = hosted_pool(tmp_path_factory, cell_timeout_s=300)
    lm = load_model(content.DEFAULT_MODEL, device="cpu")
    kernel = pool.kernel_for("grace")
    steps = content.steps()

    def run_all(upto: int) -> None:
        for step in steps[:upto]:
            code = step.starter_code if step.given else step.solution
            result = kernel.execute(code, timeout=300)
            assert result.status == "ok", (step.id, text_of(result)[-2000:])
            if step.check is not None:
                check = run_check(step, kernel, lm, outputs=result.outputs)
                assert check.passed, (step.id, check.message)

    try:
        run_all(len(steps))
        kernel.restart()
        assert kernel.execute("model").outputs[-1]["ename"] == "NameError"
        run_all(len(steps))  # what "Run all above" + the last step does after a restart
    finally:
        pool.shutdown_all()
    still_answers(bob, "after the whole exercise")
