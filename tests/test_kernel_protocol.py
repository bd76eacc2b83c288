"""One kernel interface: the pool works with anything that satisfies the ``Kernel`` protocol,
and a gateway kernel's socket refuses a frame over the size a local kernel's client refuses."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from workbook.config import Settings
from workbook.kernels import capacity, gateway_protocol, spawning
from workbook.kernels.gateway import GatewayKernel, GatewayUnavailable
from workbook.kernels.interface import Kernel
from workbook.kernels.kernel import StudentKernel
from workbook.kernels.notices import message_too_big
from workbook.kernels.pool import KernelPool
from workbook.kernels.result import ExecutionResult


class ExecKernel:
    """A kernel of a kind the pool has never seen: cells run with ``exec`` in a dict.

    It has the ``Kernel`` protocol's names and nothing else (no ``_proc``, no ``_stop``).
    """

    def __init__(self, user_id: str, folder: Path) -> None:
        self.user_id = user_id
        self.lock = threading.RLock()
        self.last_used = time.monotonic()
        self.pending_notice = ""
        self.starts = 0
        self._folder: Path | None = folder
        self._namespace: dict[str, Any] | None = None
        self.moved_to: list[Path] = []

    def start(self) -> None:
        with self.lock:
            assert self._folder is not None
            self._folder.mkdir(parents=True, exist_ok=True)
            self._namespace = {}
            self.starts += 1

    def execute(self, code: str, timeout: float | None = None) -> ExecutionResult:
        with self.lock:
            if self._namespace is None:
                self.start()
            assert self._namespace is not None
            value = eval(code, self._namespace) if "=" not in code else exec(code, self._namespace)
            notice, self.pending_notice = self.pending_notice, ""
            outputs = [] if value is None else [{"output_type": "stream", "text": repr(value)}]
            return ExecutionResult(outputs=outputs, execution_count=1, message=notice)

    def inspect(self, code: str, timeout: float | None = None) -> Any:
        return None

    def interrupt(self) -> None:
        pass

    def restart(self) -> None:
        self.start()

    def is_alive(self) -> bool:
        return self._namespace is not None

    @property
    def started(self) -> bool:
        return self._namespace is not None

    def shutdown(self) -> None:
        with self.lock:
            self._namespace = None

    def stop_reason(self) -> str:
        return ""

    def cull_notice(self, *, idle: bool) -> str:
        return f"{self.user_id}'s variables are gone" if idle else ""

    @property
    def pid(self) -> int | None:
        return None

    @property
    def home(self) -> Path | None:
        return self._folder

    def move_home(self, folder: Path) -> None:
        self._folder = folder
        self.moved_to.append(folder)


def test_local_gateway_and_any_other_kernel_satisfy_one_protocol(tmp_path):
    local = StudentKernel("ada", Settings(work_dir=tmp_path), cwd=tmp_path / "ada")
    remote = GatewayKernel("ada", Settings(kernel_gateway="http://127.0.0.1:9"))
    other = ExecKernel("ada", tmp_path / "ada")
    assert all(isinstance(kernel, Kernel) for kernel in (local, remote, other))
    assert not isinstance(object(), Kernel)


@pytest.fixture
def pool(tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "available_mb", lambda: 10_000.0)
    settings = Settings(work_dir=tmp_path, spare_kernels=1, max_kernels=4, kernel_idle_s=60)
    pool = KernelPool(settings)
    pool._new_kernel = lambda user_id: ExecKernel(user_id, tmp_path / user_id)
    yield pool
    pool.shutdown_all()


def test_the_pool_runs_culls_and_restarts_a_kernel_it_knows_only_by_the_protocol(pool):
    kernel = pool.kernel_for("ada")
    assert kernel.execute("x = 41").status == "ok"
    assert kernel.execute("x + 1").outputs[0]["text"] == repr(41 + 1)  # variables kept
    assert pool.measure() > 0  # no pid to measure: the estimate stands
    kernel.last_used = time.monotonic() - 3600
    assert pool.cull_idle() == ["ada"] and not kernel.is_alive()
    again = pool.kernel_for("ada")
    assert again is not kernel and again.execute("1").message == "ada's variables are gone"
    fresh = pool.restart("ada")
    with pytest.raises(NameError):
        fresh.execute("x")


def test_a_spare_known_only_by_the_protocol_is_adopted_with_the_students_files(pool, tmp_path):
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "notes.txt").write_text("mine")
    assert pool._spares.fill_one()
    spare = pool._spares.kernels()[0]
    assert isinstance(spare, ExecKernel) and spare.user_id != "bob"
    kernel = pool.kernel_for("bob")
    assert kernel is spare and kernel.user_id == "bob" and kernel.starts == 1
    assert kernel.moved_to == [tmp_path / "bob"] and kernel.home == tmp_path / "bob"
    assert (tmp_path / "bob" / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------- the WebSocket's bound
@pytest.fixture
def oversized_gateway():
    """A WebSocket server (the ``websockets`` library's) that answers any request with one
    text frame a byte over the cap; yields its URL."""

    def handler(connection) -> None:
        connection.recv()
        try:
            connection.send("x" * (gateway_protocol.MAX_MESSAGE_BYTES + 1))
            connection.recv()  # until the client closes
        except ConnectionClosed:  # the client refused the frame and left
            pass

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield f"ws://{host}:{port}/api/kernels/k1/channels"
        server.shutdown()
    thread.join(10)


def _connected_kernel(url: str) -> GatewayKernel:
    from jupyter_client.session import Session

    kernel = GatewayKernel("ada", Settings(kernel_gateway="http://127.0.0.1:9"))
    kernel._kernel_id = "k1"
    kernel._channels = gateway_protocol.Channels(url, {}, Session(key=b"", username="ada"))
    return kernel


def test_the_gateway_socket_takes_no_larger_message_than_a_local_kernels_client(
    oversized_gateway,
):
    kernel = _connected_kernel(oversized_gateway)
    try:
        assert kernel._channels is not None
        local_cap = spawning.client_context().getsockopt(zmq.MAXMSGSIZE)
        assert kernel._channels._ws.protocol.max_message_size == local_cap > 0
    finally:
        kernel._channels.close()
        kernel._kernel_id = None


def test_a_gateway_frame_over_the_cap_is_refused_with_a_clear_message(oversized_gateway):
    kernel = _connected_kernel(oversized_gateway)
    try:
        with pytest.raises(GatewayUnavailable) as refused:
            kernel.execute("print('x' * 10**9)")
        expected = message_too_big(gateway_protocol.MAX_MESSAGE_BYTES)
        assert str(refused.value) == expected
        assert f"{gateway_protocol.MAX_MESSAGE_BYTES // 2**20} MB" in expected
        assert "Your code is saved" in expected
    finally:
        if kernel._channels is not None:
            kernel._channels.close()
        kernel._kernel_id = None  # no gateway to ask for a shutdown
