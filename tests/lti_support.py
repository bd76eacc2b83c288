"""Driving the tool's LTI routes without a browser: a Starlette test client per browser.

``Tool`` holds the endpoints under test (a store on a file, settings, a key-set cache that
refetches at once) and opens clients, each standing for one browser with its own cookies.
The tool's origin is ``https://testserver`` so that ``Secure`` cookies travel as a browser
sends them to an HTTPS site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path

from lti_platform import LaunchSpec, LocalPlatform, query_of
from starlette.applications import Starlette
from starlette.testclient import TestClient

from db import Store
from workbook import Settings
from workbook.lti import KeySets, LtiEndpoints

TOOL_BASE = "https://testserver"
_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@dataclass
class Tool:
    """The tool's LTI endpoints on a fresh database, registered with ``platform``."""

    platform: LocalPlatform
    store: Store
    settings: Settings
    endpoints: LtiEndpoints

    @classmethod
    def open(cls, platform: LocalPlatform, folder: Path, **settings: object) -> Tool:
        store = Store(folder / "workbook.db")
        platform.add_platform_to(store)
        config = Settings(db_path=folder / "workbook.db", **settings)
        # No cooldown: each test may see a refetch for an unknown kid at once.
        endpoints = LtiEndpoints(config, store, KeySets(refetch_cooldown_s=0))
        return cls(platform, store, config, endpoints)

    def browser(self) -> TestClient:
        """A new client: one browser with its own cookie jar."""
        app = Starlette(routes=self.endpoints.routes())
        return TestClient(app, base_url=TOOL_BASE, follow_redirects=False)

    def login(self, client: TestClient, spec: LaunchSpec) -> dict[str, str]:
        """The platform starts a login; returns the tool's redirect to the auth URL (query)."""
        response = client.get(self.platform.login_url(spec))
        assert response.status_code == 302, response.text
        assert response.headers["location"].startswith(self.platform.auth_url)
        return query_of(response.headers["location"])

    def launch(self, client: TestClient, spec: LaunchSpec, **overrides: object):
        """A whole launch up to the tool's answer to the platform's POST."""
        form = self.platform.answer(self.login(client, spec), spec, **overrides)
        return client.post("/lti/launch", data=form), form

    def enter(self, client: TestClient, launched) -> object:
        """Post the handoff page's form (what its script does): the sign-in response."""
        fields = {k: unescape(v) for k, v in _HIDDEN.findall(launched.text)}
        assert set(fields) == {"code", "target"}, launched.text
        return client.post("/lti/enter", data=fields)

    def close(self) -> None:
        self.store.close()
