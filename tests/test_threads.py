"""The thread policy: one thread per kernel at start, a fair share of the cores per run."""

from __future__ import annotations

import pytest

from workbook.config import Settings, SettingsError
from workbook.kernels import threads


@pytest.mark.parametrize(
    ("running", "cores", "expected"),
    [(1, 2, 2), (2, 2, 1), (10, 2, 1), (1, 16, 16), (3, 16, 5), (0, 4, 4)],
)
def test_each_run_gets_an_equal_share_of_a_quiet_machines_cores(running, cores, expected):
    assert threads.share(running, cores, load=0.2) == expected


@pytest.mark.parametrize(
    ("running", "cores", "load", "expected"),
    [(1, 2, 1.0, 1), (1, 2, 9.5, 1), (1, 16, 10.2, 6), (2, 16, 3.0, 8), (1, 4, 4.0, 1)],
)
def test_a_run_never_gets_more_threads_than_the_load_leaves_cores_idle(
    running, cores, load, expected
):
    assert threads.share(running, cores, load=load) == expected


def test_the_app_uses_a_quarter_of_the_cores_and_at_least_one():
    assert [threads.app_threads(n) for n in (1, 2, 4, 8, 16)] == [1, 1, 1, 2, 4]


def test_kernels_start_with_one_thread_in_every_library():
    env = threads.kernel_env()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false"


class FakeKernel:
    """Runs the grant snippet in a namespace of its own, like a kernel would."""

    def __init__(self, torch_module=None) -> None:
        self.starts = 1
        self.sent: list[str] = []
        self.torch = torch_module

    def inspect(self, code: str, timeout=None):
        import sys

        self.sent.append(code)
        saved = sys.modules.get("torch")
        if self.torch is None:
            sys.modules.pop("torch", None)
        else:
            sys.modules["torch"] = self.torch
        try:
            ns: dict = {}
            exec(code, ns)
            return ns["__workbook_result__"]
        finally:
            if saved is None:
                sys.modules.pop("torch", None)
            else:
                sys.modules["torch"] = saved


class FakeTorch:
    def __init__(self) -> None:
        self.threads = 1

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, n: int) -> None:
        self.threads = n


def test_grant_asks_the_kernel_only_when_its_share_changes():
    torch = FakeTorch()
    kernel = FakeKernel(torch)
    assert threads.grant(kernel, 2) and torch.threads == 2
    assert not threads.grant(kernel, 2)
    assert threads.grant(kernel, 1) and torch.threads == 1
    kernel.starts += 1  # restarted: its environment's one thread again, so ask again
    assert threads.grant(kernel, 1)
    assert len(kernel.sent) == 3


def test_a_gateway_kernel_that_was_replaced_is_told_its_threads_again(monkeypatch):
    from workbook.kernels.gateway import GatewayKernel

    kernel = GatewayKernel("ada", Settings(kernel_gateway="http://127.0.0.1:9"))
    # A gateway that starts a new kernel on every POST; no socket, the kernel answers at once.
    answers = iter([{"id": "first"}, {"id": "second"}])
    monkeypatch.setattr(
        kernel._rest,
        "call",
        lambda method, *_a, **_k: (201, next(answers)) if method == "POST" else (204, None),
    )
    monkeypatch.setattr(kernel, "_connect", lambda: None)
    monkeypatch.setattr(kernel, "_wait_ready", lambda: None)
    torch = FakeTorch()
    monkeypatch.setattr(kernel, "inspect", FakeKernel(torch).inspect)
    kernel._start_fresh()
    assert threads.grant(kernel, 2) and torch.threads == 2
    assert not threads.grant(kernel, 2)
    torch.threads = 1
    kernel._start_fresh()  # replaced (it died or ignored an interrupt): one thread again
    assert kernel.kernel_id == "second"
    assert threads.grant(kernel, 2) and torch.threads == 2


def test_grant_before_torch_is_imported_changes_nothing_and_asks_again_later():
    kernel = FakeKernel(None)
    assert threads.grant(kernel, 2)
    assert threads.grant(kernel, 2)
    assert len(kernel.sent) == 2


def test_run_slots_and_spares_come_from_the_environment():
    settings = Settings.from_env({"WORKBOOK_RUN_SLOTS": "3", "WORKBOOK_SPARE_KERNELS": "0"})
    assert settings.run_slots == 3 and settings.spare_kernels == 0
    assert Settings.from_env({"WORKBOOK_PRELOAD": "0"}).preload is False
    assert Settings.from_env({}).run_slots >= 1
    with pytest.raises(SettingsError):
        Settings.from_env({"WORKBOOK_RUN_SLOTS": "0"})
