"""Hosted mode: each test is a real attempt from inside a sandboxed student kernel."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbook import sandbox
from workbook.config import Settings
from workbook.kernel import KernelPool, SandboxUnavailable

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _sandbox_problem() -> str | None:
    try:
        sandbox.check_available()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


PROBLEM = _sandbox_problem()
needs_sandbox = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


@pytest.fixture(scope="module")
def hosted(tmp_path_factory):
    work = tmp_path_factory.mktemp("kernels")
    db = tmp_path_factory.mktemp("data") / "workbook.db"
    db.write_text("secret answers")
    settings = Settings(
        work_dir=work, db_path=db, sandbox=True, cell_timeout_s=10, kernel_max_processes=64
    )
    pool = KernelPool(settings)
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
def test_reading_the_database_file_fails(hosted, alice):
    _, settings = hosted
    _fails(alice, f"open({str(settings.db_path.resolve())!r}).read()")
    _fails(alice, f"open({str(ROOT / 'workbook' / 'config.py')!r}).read()")


@needs_sandbox
def test_another_students_folder_cannot_be_listed_or_read(hosted, alice, bob):
    assert (bob.cwd / "notes.txt").read_text() == "private"
    _fails(alice, f"import os\nos.listdir({str(bob.cwd)!r})")
    _fails(alice, f"open({str(bob.cwd / 'notes.txt')!r}).read()")
    listing = alice.execute("import os\nsorted(os.listdir('/home'))")
    assert listing.outputs[-1]["data"]["text/plain"] == "['student']"


@needs_sandbox
def test_no_tcp_connection_even_to_localhost(alice):
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


@needs_sandbox
def test_writing_outside_the_working_folder_fails_but_inside_works(alice):
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


@needs_sandbox
def test_a_file_larger_than_the_limit_cannot_be_written(hosted, alice):
    _, settings = hosted
    size = (settings.kernel_max_file_mb + 1) * 1024 * 1024
    error = _fails(alice, f"open('big.bin', 'wb').write(b'0' * {size})")
    assert error["ename"] == "OSError" and "too large" in error["evalue"].lower()


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
    assert bob.execute("6 * 7").outputs[-1]["data"]["text/plain"] == "42"

    result = alice.execute("import numpy as np\nx = np.ones(50 * 1024**3 // 8)")
    assert result.status == "error" and result.outputs[-1]["ename"] == "MemoryError"
    assert bob.execute("6 * 7").outputs[-1]["data"]["text/plain"] == "42"

    result = alice.execute("while True:\n    pass", timeout=2)
    assert result.status == "timeout"
    assert bob.execute("6 * 7").outputs[-1]["data"]["text/plain"] == "42"
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
        from workbook.kernel import KernelPool
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


def test_hosted_mode_refuses_to_start_without_bubblewrap(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="bubblewrap"):
            KernelPool(Settings(work_dir=tmp_path, sandbox=True))
    finally:
        sandbox._probe.cache_clear()


def test_sandbox_command_hides_the_repository_and_the_network(tmp_path):
    argv = sandbox.bwrap_argv(["python"], home=tmp_path / "h", ipc_dir=tmp_path / "ipc")
    assert "--unshare-all" in argv and "--share-net" not in argv
    assert "--die-with-parent" in argv
    bound = {argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert str(ROOT) not in bound
    writable = {argv[i + 1] for i, a in enumerate(argv) if a == "--bind"}
    assert writable == {str(tmp_path / "h"), str(tmp_path / "ipc")}


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
