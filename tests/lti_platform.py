"""A local LTI 1.3 platform for the tests, built on ``lti1p3platform`` (a library we did not
write), served by uvicorn on its own loopback address: another site than the app on
``localhost``, so the browser's cookie rules apply as they do with a real Moodle.

API (everything a test or another harness needs)::

    platform = LocalPlatform(host="127.0.0.2")          # an RSA key; nothing served yet
    platform.add_route("/ags/{item}/scores", endpoint, methods=["POST"])   # pluggable
    with platform.serving():                            # uvicorn in a thread, free port
        platform.url, platform.issuer                   # http://127.0.0.2:PORT
        platform.auth_url, platform.token_url, platform.keyset_url
        platform.register_tool(base="http://localhost:8501")   # the tool's URLs
        platform.add_platform_to(store)                 # `python -m db lti add-platform`
        url = platform.launch_page(LaunchSpec(user=STUDENT))   # where a browser clicks
        # ... or, without a browser, answer the tool's auth redirect directly:
        form = platform.answer(preflight_query, spec, **overrides)  # {"id_token", "state"}

Routes served: ``GET /launch/{id}`` (a prepared launch: redirects to the tool's login, like
a click on the Moodle activity), ``GET /frame/{id}`` (the same launch inside an iframe),
``GET /auth`` (the OIDC auth endpoint: checks the tool's redirect, answers with a form that
posts ``id_token`` and ``state`` to the tool), ``GET /jwks`` (the platform's key set;
``keyset_fetches`` counts requests, ``keyset_status`` can make it fail), ``POST /token``
(the client-credentials grant: the library checks the tool's signed assertion against the
tool's key set, fetched from ``{tool}/lti/jwks`` or taken from ``tool_key_set`` when set,
and answers with an access token; ``access_tokens`` keeps them), and whatever ``add_route``
adds (a score endpoint, an NRPS endpoint ...). Such an endpoint checks the bearer token with
``platform.authorized(request, scope)``.

``answer(..., client_id=, deployment_id=, expires_in=, key=)`` signs a launch as a wrongly
set-up or hostile platform would (another audience, deployment, an expired token, a key
the key set does not hold): the library builds and signs every one of them.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LtiException, MissingRequiredClaim, UnsupportedGrantType
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request as LibRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

LIS = "http://purl.imsglobal.org/vocab/lis/v2/membership"
LEARNER = f"{LIS}#Learner"
INSTRUCTOR = f"{LIS}#Instructor"
CLIENT_ID = "workbook-client"
DEPLOYMENT_ID = "1"


def private_key_pem() -> str:
    """A fresh 2048-bit RSA private key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@functools.cache
def public_key_pem(private_pem: str) -> str:
    """The public half of ``private_pem``, in PEM (cached: loading a private key is slow)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


@dataclass(frozen=True)
class PlatformUser:
    """A platform user as the launch describes them."""

    sub: str
    name: str
    email: str
    roles: tuple[str, ...]


STUDENT = PlatformUser("moodle-user-17", "Stella Student", "stella@example.org", (LEARNER,))
TEACHER = PlatformUser("moodle-user-3", "Tom Teacher", "tom@example.org", (INSTRUCTOR,))


@dataclass(frozen=True)
class LaunchSpec:
    """One launch: who, from which course, to which tool page, with which services."""

    user: PlatformUser
    context_id: str = "course-101"
    context_title: str = "NLP 101"
    target: str = ""  # the tool's URL the launch targets; "" = the registered launch URL
    ags_lineitem: str | None = None
    ags_lineitems: str | None = None
    nrps_url: str | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)


class _Registration(Registration):
    """The library's registration; its key id is computed once per key (from the public half,
    which gives the same RFC 7638 thumbprint) instead of parsing the private key per launch."""

    def get_kid(self) -> str | None:
        private = self.get_platform_private_key()
        return _kid(private) if private else None


@functools.cache
def _kid(private_pem: str) -> str:
    return Registration.get_jwk(public_key_pem(private_pem))["kid"]


class _Config(LTI1P3PlatformConfAbstract):
    """The library's platform configuration holding one registration."""

    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self._registration


class _Query(LibRequest):
    """The library's request view of the tool's redirect to ``/auth`` (its query)."""

    def build_metadata(self, request: Any) -> dict[str, Any]:
        return {"method": "GET", "get_data": dict(request), "form_data": {}, "headers": {}}


class _Launch(LTIAdvantageMessageLaunchAbstract):
    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return launch_data


class _Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class LocalPlatform:
    """The test platform (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.private_pem = private_key_pem()
        self.tool_base = ""
        self.launches: dict[str, LaunchSpec] = {}
        self.keyset_fetches = 0
        self.keyset_status = 200
        self.auth_requests: list[dict[str, str]] = []
        self.tool_key_set: dict[str, Any] | None = None  # None: fetch the tool's /lti/jwks
        self.access_tokens: list[str] = []
        self._routes: list[Route] = [
            Route("/token", self._token_route, methods=["POST"]),
            Route("/launch/{launch_id}", self._launch_route),
            Route("/frame/{launch_id}", self._frame_route),
            Route("/auth", self._auth_route),
            Route("/jwks", self._jwks_route),
        ]

    # --- where it serves ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    issuer = url
    auth_url = property(lambda self: f"{self.url}/auth")
    token_url = property(lambda self: f"{self.url}/token")
    keyset_url = property(lambda self: f"{self.url}/jwks")

    def add_route(self, path: str, endpoint: Callable[..., Any], methods: list[str]) -> None:
        """Serve one more endpoint (add before ``serving()``)."""
        self._routes.append(Route(path, endpoint, methods=methods))

    @contextlib.contextmanager
    def serving(self, timeout_s: float = 20.0) -> Iterator[LocalPlatform]:
        """Serve on a free port of ``host`` in a thread; stopped on exit."""
        with socket.socket() as sock:
            sock.bind((self.host, 0))
            self.port = sock.getsockname()[1]
        app = Starlette(routes=self._routes)
        server = uvicorn.Server(
            uvicorn.Config(app, host=self.host, port=self.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="lti-platform", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test platform did not start on {self.url}")
            time.sleep(0.02)
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    # --- the tool it knows -------------------------------------------------------------
    def register_tool(self, base: str) -> None:
        """The tool's URLs, as a Moodle admin enters them (``base`` has no trailing /)."""
        self.tool_base = base.rstrip("/")

    def add_platform_to(self, store: Any, deployment_id: str = DEPLOYMENT_ID) -> Any:
        """Register this platform in the tool's store (what the admin does from a shell)."""
        return store.add_lti_platform(
            issuer=self.issuer,
            client_id=CLIENT_ID,
            deployment_id=deployment_id,
            auth_url=self.auth_url,
            token_url=self.token_url,
            keyset_url=self.keyset_url,
            name="Test Moodle",
        )

    def registration(
        self,
        *,
        client_id: str = CLIENT_ID,
        deployment_id: str = DEPLOYMENT_ID,
        key: str | None = None,
        target: str = "",
    ) -> Registration:
        """The library's registration of the tool (overrides make a wrong one)."""
        private = key or self.private_pem
        return (
            _Registration()
            .set_iss(self.issuer)
            .set_client_id(client_id)
            .set_deployment_id(deployment_id)
            .set_launch_url(target or f"{self.tool_base}/lti/launch")
            .set_oidc_login_url(f"{self.tool_base}/lti/login")
            .set_tool_key_set_url(f"{self.tool_base}/lti/jwks")
            .set_platform_public_key(public_key_pem(private))
            .set_platform_private_key(private)
        )

    def rotate_key(self) -> None:
        """A new platform signing key (the old one leaves the key set at once)."""
        self.private_pem = private_key_pem()

    # --- launches ----------------------------------------------------------------------
    def launch_page(self, spec: LaunchSpec, *, framed: bool = False) -> str:
        """The URL a browser opens to launch (like clicking the activity in Moodle)."""
        launch_id = f"l{len(self.launches) + 1}"
        self.launches[launch_id] = spec
        return f"{self.url}/{'frame' if framed else 'launch'}/{launch_id}"

    def login_url(self, spec: LaunchSpec, launch_id: str = "direct") -> str:
        """The tool's login URL with the parameters a platform sends (via the library)."""
        self.launches.setdefault(launch_id, spec)
        login = _Login(None, _Config(registration=self.registration(target=spec.target)))
        login.set_lti_message_hint(hint=launch_id)
        return login.get_redirect(login.prepare_preflight_url(spec.user.sub))

    def answer(
        self,
        preflight: dict[str, str],
        spec: LaunchSpec | None = None,
        *,
        client_id: str = CLIENT_ID,
        deployment_id: str = DEPLOYMENT_ID,
        expires_in: int = 300,
        key: str | None = None,
    ) -> dict[str, str]:
        """Answer the tool's auth redirect with a signed launch: ``{"id_token", "state"}``.

        The library checks the redirect (nonce, state, redirect URI, client id) and signs.
        """
        spec = spec or self.launches[preflight.get("lti_message_hint", "direct")]
        registration = self.registration(
            client_id=client_id, deployment_id=deployment_id, key=key, target=spec.target
        )
        if preflight.get("redirect_uri") != f"{self.tool_base}/lti/launch":
            raise ValueError(f"unregistered redirect URI {preflight.get('redirect_uri')!r}")
        if preflight.get("login_hint") != spec.user.sub:
            raise ValueError("the login hint is not the user who launched")
        # The tool is asked about its registered client id; a wrong one is signed below.
        checked = {**preflight, "client_id": client_id}
        launch = _Launch(_Query(checked), _Config(registration=registration))
        launch.set_user_data(spec.user.sub, list(spec.user.roles), spec.user.name, spec.user.email)
        launch.set_launch_context_claim(spec.context_id, context_title=spec.context_title)
        launch.set_resource_link_claim(f"link-{spec.context_id}")
        if spec.ags_lineitem or spec.ags_lineitems:
            launch.set_ags(spec.ags_lineitems or "", spec.ags_lineitem)
        if spec.nrps_url:
            launch.set_nrps(spec.nrps_url)
        if spec.extra_claims:
            launch.set_extra_claims(spec.extra_claims)
        launch.set_id_token_expiration(expires_in)
        form = launch.lti_launch()
        return {"id_token": form["id_token"], "state": form["state"]}

    # --- routes --------------------------------------------------------------------------
    async def _launch_route(self, request: Request) -> Response:
        launch_id = request.path_params["launch_id"]
        return RedirectResponse(self.login_url(self.launches[launch_id], launch_id), 302)

    async def _frame_route(self, request: Request) -> Response:
        launch_id = request.path_params["launch_id"]
        src = escape(self.login_url(self.launches[launch_id], launch_id))
        return HTMLResponse(
            f'<!doctype html><title>Course</title><iframe id="tool" src="{src}"'
            ' width="800" height="600"></iframe>'
        )

    async def _auth_route(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.auth_requests.append(query)
        form = self.answer(query)
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in form.items()
        )
        action = escape(query["redirect_uri"])
        return HTMLResponse(
            f'<!doctype html><title>Launching</title><form id="f" method="post"'
            f' action="{action}">{fields}</form>'
            '<script>document.getElementById("f").submit()</script>'
        )

    async def _jwks_route(self, request: Request) -> Response:
        self.keyset_fetches += 1
        if self.keyset_status != 200:
            return Response("unavailable", status_code=self.keyset_status)
        return JSONResponse({"keys": self.registration().get_jwks()})

    async def _token_route(self, request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        registration = self.registration()
        if self.tool_key_set is not None:
            registration.set_tool_key_set(self.tool_key_set)
        config = _Config(registration=registration)
        try:
            # Blocking (it may fetch the tool's key set): off the server's event loop.
            answer = await run_in_threadpool(config.get_access_token, form)
        except (LtiException, MissingRequiredClaim, UnsupportedGrantType, jwt.PyJWTError) as error:
            return JSONResponse(
                {"error": "invalid_request", "error_description": type(error).__name__}, 400
            )
        self.access_tokens.append(answer["access_token"])
        return JSONResponse(dict(answer))

    def authorized(self, request: Request, scope: str) -> bool:
        """Whether the request carries an access token of ours granting ``scope``."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        config = _Config(registration=self.registration())
        try:
            return config.validate_token(header[7:].strip(), allowed_scopes=[scope])
        except (LtiException, jwt.PyJWTError):
            return False


def query_of(url: str) -> dict[str, str]:
    """A URL's query as a dict (the tool's redirect to ``/auth``)."""
    return dict(parse_qsl(urlsplit(url).query))
