"""The gateway's pieces that need no running gateway: settings, kernelspec, messages, hooks.

The real gateway (a Kernel Gateway process, real kernels, the real model) is exercised in
``tests/test_gateway_real.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbook.config import Settings, SettingsError
from workbook.kernels import gateway_launcher
from workbook.kernels.errors import KernelDied
from workbook.kernels.gateway import UNREACHABLE, GatewayKernel, GatewayUnavailable
from workbook.kernels.gateway_local import free_port, kernelspec, write_kernelspec
from workbook.kernels.kernel import StudentKernel
from workbook.kernels.notices import MODEL_MISSING, model_missing_message
from workbook.kernels.pool import KernelPool

ROOT = Path(__file__).resolve().parents[1]


def test_gateway_settings_come_from_the_environment():
    settings = Settings.from_env(
        {
            "WORKBOOK_KERNEL_GATEWAY": "https://gateway.example.org:8888/",
            "WORKBOOK_KERNEL_GATEWAY_TOKEN": " s3cret ",
            "WORKBOOK_KERNEL_GATEWAY_KERNEL": "python_kubernetes",
        }
    )
    assert settings.kernel_gateway == "https://gateway.example.org:8888"
    assert settings.kernel_gateway_token == "s3cret"
    assert settings.kernel_gateway_kernel == "python_kubernetes"


def test_unset_gateway_keeps_local_kernels():
    settings = Settings.from_env({})
    assert settings.kernel_gateway == "" and settings.kernel_gateway_kernel == "workbook"


@pytest.mark.parametrize("value", ["gateway:8888", "ftp://host:21", "http://", "http://h?x=1"])
def test_a_gateway_url_that_is_not_http_is_refused_with_its_name(value):
    with pytest.raises(SettingsError, match="WORKBOOK_KERNEL_GATEWAY must look like http"):
        Settings.from_env({"WORKBOOK_KERNEL_GATEWAY": value})


def test_the_pool_builds_gateway_kernels_only_when_a_gateway_is_set(tmp_path):
    local = KernelPool(Settings(work_dir=tmp_path))
    remote = KernelPool(Settings(work_dir=tmp_path, kernel_gateway="http://127.0.0.1:9"))
    try:
        assert isinstance(local._new_kernel("ada"), StudentKernel)
        kernel = remote._new_kernel("ada")
        assert isinstance(kernel, GatewayKernel)
        assert kernel.user_id == "ada" and not kernel.is_alive()
    finally:
        local.shutdown_all()
        remote.shutdown_all()


def test_hosted_mode_needs_no_sandbox_on_the_app_server_with_a_gateway(tmp_path, monkeypatch):
    from workbook.kernels import sandbox

    def refuse(*_args: object) -> None:
        raise sandbox.SandboxUnavailable("no bubblewrap here")

    monkeypatch.setattr(sandbox, "check_available", refuse)
    with pytest.raises(sandbox.SandboxUnavailable):
        KernelPool(Settings(work_dir=tmp_path, sandbox=True))
    pool = KernelPool(Settings(work_dir=tmp_path, sandbox=True, kernel_gateway="http://h:1"))
    pool.shutdown_all()


def test_an_unreachable_gateway_says_so_in_plain_words():
    settings = Settings(kernel_gateway=f"http://127.0.0.1:{free_port()}")
    kernel = GatewayKernel("ada", settings)
    with pytest.raises(GatewayUnavailable) as raised:
        kernel.execute("1 + 1")
    assert isinstance(raised.value, KernelDied)  # the page shows it like any kernel failure
    assert str(raised.value) == UNREACHABLE
    assert "code is saved" in UNREACHABLE and "Try again in a minute" in UNREACHABLE


def test_kernelspec_runs_our_launchers_with_the_limits_and_the_model_cache(tmp_path):
    spec = kernelspec(
        python="/opt/venv/bin/python",
        code_root=Path("/srv/workbook"),
        model_cache=Path("/models/lm_engine"),
        home_root=Path("/srv/homes"),
        memory_mb=3000,
        cell_cpu_s=60,
    )
    argv = spec["argv"]
    assert argv[:2] == [
        "/opt/venv/bin/python",
        "/srv/workbook/workbook/kernels/gateway_launcher.py",
    ]
    assert argv[2:5] == ["--home-root", "/srv/homes", "--"]
    launcher = argv[5:]
    assert launcher[:2] == ["-f", "{connection_file}"]
    assert launcher[launcher.index("--memory-mb") + 1] == "3000"
    assert launcher[launcher.index("--cell-cpu-s") + 1] == "60"
    assert spec["env"]["PYTHONPATH"] == "/srv/workbook"
    assert spec["env"]["LM_ENGINE_CACHE"] == "/models/lm_engine"
    assert spec["env"]["HF_HUB_OFFLINE"] == "1"
    assert spec["interrupt_mode"] == "signal"
    written = write_kernelspec(tmp_path / "workbook", model_cache=tmp_path)
    assert json.loads(written.read_text())["env"]["LM_ENGINE_CACHE"] == str(tmp_path)
    assert (ROOT / "workbook" / "kernels" / "gateway_launcher.py").is_file()
    assert (ROOT / "workbook" / "kernels" / "kernel_launcher.py").is_file()


def test_kernelspec_without_home_root_keeps_the_pods_own_folder():
    argv = kernelspec(model_cache=Path("/models"))["argv"]
    assert "--home-root" not in argv and argv[2] == "--"


def test_gateway_launcher_gives_each_student_a_private_folder(tmp_path):
    # Run as a script, as the gateway does, but hand over to a stand-in for ipykernel.
    probe = (
        "import os, sys, runpy\n"
        "sys.argv = [sys.argv[1], '--home-root', sys.argv[2], '--', '-f', 'x.json']\n"
        "import types\n"
        "fake = types.ModuleType('kernel_launcher')\n"
        "fake.main = lambda argv: print(os.getcwd(), os.environ['HOME'], argv)\n"
        "sys.modules['kernel_launcher'] = fake\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    script = str(ROOT / "workbook" / "kernels" / "gateway_launcher.py")
    env = dict(os.environ, KERNEL_WORKBOOK_USER="ada")
    done = subprocess.run(
        [sys.executable, "-c", probe, script, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    home = tmp_path / "ada"
    assert done.stdout.split() == [str(home), str(home), "['-f',", "'x.json']"]
    assert home.stat().st_mode & 0o077 == 0
    refused = subprocess.run(
        [sys.executable, "-c", probe, script, str(tmp_path)],
        env=dict(env, KERNEL_WORKBOOK_USER="../escape"),
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "refusing the student id" in refused.stderr
    assert not (tmp_path.parent / "escape").exists()


def test_gateway_launcher_splits_its_own_options_from_the_launchers():
    assert gateway_launcher._split(["--home-root", "/h", "--", "-f", "c.json"]) == (
        ["--home-root", "/h"],
        ["-f", "c.json"],
    )
    assert gateway_launcher._split(["-f", "c.json"]) == ([], ["-f", "c.json"])


def _error(ename: str, evalue: str, frames: list[str]) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": frames}


def test_a_kernel_host_without_the_model_gets_a_message_for_the_instructor():
    no_package = _error("ModuleNotFoundError", "No module named 'lm_engine'", ["import lm_engine"])
    assert model_missing_message(no_package) == MODEL_MISSING.format(
        why="its kernels cannot import lm_engine"
    )
    not_available = _error("ModelNotAvailable", "model 'x' is not available", [])
    assert "not available on the kernel server" in model_missing_message(not_available)
    read_only = _error(
        "PermissionError",
        "[Errno 13] Permission denied: '/models/smollm2'",
        ["File /srv/workbook/lm_engine/loaders.py:112, in _write_bundled_cache"],
    )
    assert "model cache is missing" in model_missing_message(read_only)


def test_students_own_errors_get_no_model_message():
    assert model_missing_message(_error("NameError", "name 'tokenizer' is not defined", [])) == ""
    assert model_missing_message(_error("ModuleNotFoundError", "No module named 'nmupy'", [])) == ""
    # An OSError the student caused (not inside lm_engine) is theirs to fix.
    assert (
        model_missing_message(_error("FileNotFoundError", "'data.csv'", ["open('data.csv')"])) == ""
    )


@pytest.mark.parametrize(
    ("ename", "evalue", "words"),
    [
        ("MemoryError", "", "more memory than the 900 MB"),
        (
            "RuntimeError",
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 8000000000 bytes.",
            "more memory than the 900 MB",
        ),
        ("CellCPUTimeExceeded", "", "more than 30 s of CPU time"),
    ],
)
def test_a_gateway_cell_stopped_by_a_limit_gets_the_local_kernels_message(
    tmp_path, monkeypatch, ename, evalue, words
):
    from workbook.kernels.collector import Collector

    settings = Settings(
        kernel_gateway="http://127.0.0.1:9", kernel_memory_mb=900, kernel_cell_cpu_s=30
    )
    reply = {"status": "error", "ename": ename, "evalue": evalue, "traceback": []}
    remote = GatewayKernel("ada", settings)
    monkeypatch.setattr(remote, "_run", lambda *_a, **_k: (Collector(0), reply, "error", None))
    local = StudentKernel("ada", settings, cwd=tmp_path)
    monkeypatch.setattr(local, "is_alive", lambda: True)
    monkeypatch.setattr(local, "_run", lambda *_a, **_k: (Collector(0), reply, "error", None))
    there, here = remote.execute("x = big()"), local.execute("x = big()")
    assert there.status == here.status == "error"
    assert words in there.message and "variables are kept" in there.message
    assert there.message == here.message


class LateSubscriber:
    """Channels whose iopub subscription goes live only after the first request: the kernel's
    shell answers every request, its iopub status reaches us from the second one on."""

    def __init__(self) -> None:
        import queue
        import threading

        self.queues = {"shell": queue.Queue(), "iopub": queue.Queue()}
        self.closed, self.died = threading.Event(), threading.Event()
        self.sent: list[str] = []

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        msg_id = f"request-{len(self.sent)}"
        self.sent.append(msg_id)
        answer = {"parent_header": {"msg_id": msg_id}}
        self.queues["shell"].put({**answer, "msg_type": "kernel_info_reply"})
        if len(self.sent) > 1:
            self.queues["iopub"].put({**answer, "msg_type": "status"})
        return msg_id

    def get(self, channel: str, timeout: float) -> dict | None:
        try:
            return self.queues[channel].get(timeout=timeout)
        except Exception:  # noqa: BLE001 - queue.Empty
            return None


def test_a_kernel_counts_as_ready_only_once_its_iopub_reaches_us():
    kernel = GatewayKernel("ada", Settings(kernel_gateway=f"http://127.0.0.1:{free_port()}"))
    kernel._channels = channels = LateSubscriber()
    kernel._wait_ready()
    assert channels.sent == ["request-0", "request-1"]  # asked again until iopub answered
