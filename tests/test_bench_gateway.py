"""The gateway benchmark's own checks (no gateway, no kernel)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import gateway


class _FailingWorkbook:
    """Registers anyone; every cell fails before any check runs (no message either)."""

    settings = SimpleNamespace(model_name="smollm2-135m")

    def register(self, *_args):
        return SimpleNamespace(id=1)

    def run_step(self, _user_id, step_id, _code):
        result = SimpleNamespace(status="died", message="")
        return SimpleNamespace(step_id=step_id, result=result, check=None)


def test_a_step_that_fails_before_its_check_is_reported_not_crashed_on():
    with pytest.raises(RuntimeError, match="setup failed: died"):
        gateway._complete(_FailingWorkbook(), "ada@example.org")
