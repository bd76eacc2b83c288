"""The app keeps at most a few kernel templates; the least recently used one goes first."""

from __future__ import annotations

from workbook.kernels import template


class _Fake:
    """Stands in for a running template: ready at once, records its stop."""

    def __init__(self, env, warm_up) -> None:
        self.env = dict(env)
        self.stopped = False

    def wait_ready(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def test_a_new_template_past_the_most_stops_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(template, "_Template", _Fake)
    monkeypatch.setattr(template, "_templates", {})
    monkeypatch.setattr(template, "_pending", set())
    monkeypatch.setattr(template, "_failed_at", {})
    started = []
    for number in range(template._MOST + 2):
        key = (("WORKBOOK_TEST_ENV", str(number)),)
        template._pending.add(key)
        started.append((key, template._start(key, dict(key), "")))
    kept = started[-template._MOST :]
    assert list(template._templates.items()) == kept  # the newest, in order of use
    assert [t.stopped for _, t in started] == [True] * 2 + [False] * template._MOST
    assert not template._pending
