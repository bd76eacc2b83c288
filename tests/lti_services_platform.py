"""A local LTI platform's service side, for the grade and class-list tests.

Built on ``lti1p3platform`` (a platform-side library we did not write): its
``LTI1P3PlatformConfAbstract.get_access_token`` checks the tool's client assertion (signature
against the tool's published key set, ``kid``, grant type) and issues the access tokens that
``validate_token`` checks on every service call. On top, the token endpoint checks what the
library leaves out (``aud`` is the token URL, ``iss`` = ``sub`` = client id, a ``jti`` used
once), and the score endpoint follows Moodle's rules:

- line item URLs end in ``?type_id=N``; a score posted anywhere but ``<lineitem>/scores``
  with that query string is 404;
- a score whose timestamp is not newer (in whole seconds, as Moodle compares) than the last
  one taken for that (line item, user) is 409;
- a user who cannot be graded in that line item (not enrolled as a learner) is 400.

A score or NRPS endpoint told to (``redirect_scores``, ``redirect_members``) answers 302 to a login page that answers 200,
as a site behind a sign-in or an http-to-https redirect does. The NRPS endpoint pages its
members (``Link: <...>; rel="next"``). Served by uvicorn on its own 127.0.0.x address, in a
thread that the fixture stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.exceptions import LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.registration import Registration
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
PAGE_SIZE = 2


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class _Platform(LTI1P3PlatformConfAbstract):
    """The library's platform configuration, holding one registration of the tool."""

    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self._registration


@dataclass
class ReceivedScore:
    """A score the platform took: the line item's path and query, headers and the body."""

    path: str
    query: str
    content_type: str
    body: dict[str, Any]


@dataclass
class ServicePlatform:
    """The platform's state: what it received and how it should misbehave next.

    Attributes:
        gradable: line item id -> the subs that can be graded in it.
        members: context id -> NRPS members (dicts as NRPS lists them).
        fail_next: HTTP statuses the score endpoint answers, one per request, before it
            takes scores again (e.g. ``[503]``).
        lose_next: how many of the next scores are taken but answered 503 (a lost answer).
    """

    issuer: str = ""
    client_id: str = "workbook-tool"
    deployment_id: str = "1"
    gradable: dict[str, set[str]] = field(default_factory=dict)
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    lose_next: int = 0
    received: list[ReceivedScore] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    token_requests: int = 0
    nrps_pages: int = 0
    last_seconds: dict[tuple[str, str], int] = field(default_factory=dict)
    _jtis: set[str] = field(default_factory=set)
    base_url: str = ""
    token_path: str = "/mod/lti/token.php"
    next_base: str = ""  # set: the NRPS "next" links point there (another site)
    redirect_scores: str = ""  # set: the score endpoint answers 302 to there (e.g. a login)
    redirect_members: str = ""  # set: the NRPS endpoint answers 302 to there
    login_hits: int = 0  # requests that reached the login page (a redirect followed)
    members_missing: bool = False  # the NRPS endpoint answers 200 with no "members" list

    def lineitem_url(self, lineitem_id: str, type_id: int = 3) -> str:
        """A line item URL the way Moodle writes it (with ``?type_id=``)."""
        return f"{self.base_url}/mod/lti/services.php/2/lineitems/{lineitem_id}/lineitem?type_id={type_id}"

    def nrps_url(self, context_id: str) -> str:
        return f"{self.base_url}/mod/lti/services.php/CourseSection/{context_id}/bindings/2/memberships"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{self.token_path}"

    # --- the endpoints ---------------------------------------------------------------
    def app(self, tool_jwks: Any) -> Starlette:
        """The three endpoints as one app."""
        return Starlette(
            routes=[
                Route(path, endpoint, methods=methods)
                for path, endpoint, methods in self.routes(tool_jwks)
            ]
        )

    def routes(self, tool_jwks: Any, authorized: Any = None) -> list[tuple[str, Any, list[str]]]:
        """(path, endpoint, methods) of the token, score and NRPS endpoints, to serve alone
        (``serve_platform``) or beside a launch platform's (``LocalPlatform.add_route``).

        Args:
            tool_jwks: returns the tool's public key set (what its ``/lti/jwks`` serves).
            authorized: ``(request, scope) -> bool`` of a platform whose own token endpoint
                issues the tokens (``LocalPlatform.authorized``); then no token route here.
        """
        private, public = _pem_pair()
        registration = (
            Registration()
            .set_iss(self.issuer)
            .set_client_id(self.client_id)
            .set_deployment_id(self.deployment_id)
            .set_platform_private_key(private)
            .set_platform_public_key(public)
        )
        lti = _Platform(registration=registration)
        lti.get_registration()

        async def token(request: Request) -> Response:
            self.token_requests += 1
            form = dict(await request.form())
            # The tool's key set as the tool publishes it now (its /lti/jwks body); the
            # issuer is known only once the platform serves.
            registration.set_tool_key_set(tool_jwks()).set_iss(self.issuer)
            try:
                answer = lti.get_access_token(form)
                claims = jwt.decode(
                    form["client_assertion"],
                    options={"verify_signature": False},  # verified just above by the library
                )
            except (LtiException, KeyError, jwt.PyJWTError, AssertionError) as exc:
                return JSONResponse({"error": "invalid_client", "error_description": str(exc)}, 400)
            problems = [
                name
                for name, ok in (
                    ("iss", claims.get("iss") == self.client_id),
                    ("sub", claims.get("sub") == self.client_id),
                    ("aud", claims.get("aud") == self.token_url),
                    ("exp", isinstance(claims.get("exp"), int)),
                    ("jti", bool(claims.get("jti")) and claims["jti"] not in self._jtis),
                )
                if not ok
            ]
            if problems:
                return JSONResponse(
                    {"error": "invalid_client", "error_description": f"bad {', '.join(problems)}"},
                    400,
                )
            self._jtis.add(claims["jti"])
            return JSONResponse(dict(answer))

        def authorised(request: Request, scope: str) -> bool:
            if authorized is not None:
                return authorized(request, scope)
            header = request.headers.get("authorization", "")
            if not header.startswith("Bearer "):
                return False
            try:
                return lti.validate_token(header[len("Bearer ") :], allowed_scopes=[scope])
            except (LtiException, jwt.PyJWTError):
                return False

        async def scores(request: Request) -> Response:
            lineitem_id = request.path_params["lineitem"]
            if not authorised(request, SCORE_SCOPE):
                return JSONResponse({"error": "unauthorized"}, 401)
            if not request.query_params.get("type_id"):
                return Response("No such line item", 404)
            if self.redirect_scores:
                return Response(status_code=302, headers={"Location": self.redirect_scores})
            if self.fail_next:
                return Response("Service unavailable", self.fail_next.pop(0))
            body = json.loads(await request.body())
            content_type = request.headers.get("content-type", "")
            if content_type != "application/vnd.ims.lis.v1.score+json":
                return Response("Unsupported media type", 415)
            user = str(body.get("userId"))
            if user not in self.gradable.get(lineitem_id, set()):
                self.refused.append((400, user))
                return Response("Incorrect score received", 400)
            seconds = int(datetime.fromisoformat(body["timestamp"]).timestamp())
            key = (lineitem_id, user)
            if key in self.last_seconds and seconds <= self.last_seconds[key]:
                self.refused.append((409, user))
                return Response("Refusing score with an earlier timestamp", 409)
            self.last_seconds[key] = seconds
            self.received.append(
                ReceivedScore(request.url.path, request.url.query, content_type, body)
            )
            if self.lose_next:
                self.lose_next -= 1
                return Response("Gateway timeout", 503)
            return Response(status_code=200)

        async def memberships(request: Request) -> Response:
            if not authorised(request, NRPS_SCOPE):
                return JSONResponse({"error": "unauthorized"}, 401)
            self.nrps_pages += 1
            if self.redirect_members:
                return Response(status_code=302, headers={"Location": self.redirect_members})
            context = request.path_params["context"]
            everyone = self.members.get(context, [])
            page = int(request.query_params.get("page", "0"))
            chunk = everyone[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
            headers = {}
            if (page + 1) * PAGE_SIZE < len(everyone):
                base = self.next_base or self.nrps_url(context)
                headers["Link"] = f'<{base}?page={page + 1}>; rel="next"'
            body = {"id": str(request.url), "context": {"id": context}, "members": chunk}
            if self.members_missing:
                del body["members"]
            return JSONResponse(
                body,
                headers=headers,
                media_type="application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
            )

        async def login_page(request: Request) -> Response:
            # What a redirected request finds: a page that answers 200 to anyone.
            self.login_hits += 1
            return Response("<html><body>Log in to the site</body></html>", 200)

        own_token = [] if authorized is not None else [(self.token_path, token, ["POST"])]
        return [
            *own_token,
            ("/login/index.php", login_page, ["GET"]),
            ("/mod/lti/services.php/2/lineitems/{lineitem}/lineitem/scores", scores, ["POST"]),
            (
                "/mod/lti/services.php/CourseSection/{context}/bindings/2/memberships",
                memberships,
                ["GET"],
            ),
        ]


@contextmanager
def serve_platform(tool_jwks: Any, host: str = "127.0.0.7") -> Iterator[ServicePlatform]:
    """Run a ``ServicePlatform`` on ``host`` (a free port) until the block ends.

    Args:
        tool_jwks: returns the tool's public key set (what ``/lti/jwks`` serves).
    """
    platform = ServicePlatform()
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The platform's app needs its own base URL, known once the socket is bound.
        await holder["app"](scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="lti-service-platform", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test platform did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    platform.base_url = f"http://{host}:{port}"
    platform.issuer = platform.base_url
    holder["app"] = platform.app(tool_jwks)
    try:
        yield platform
    finally:
        server.should_exit = True
        thread.join(10)
