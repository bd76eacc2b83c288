"""The LTI 1.3 endpoints ``serve.py`` mounts beside the app, and how a launch signs in.

The launch, step by step (the platform is another site, so cookie rules matter):

1. ``GET|POST /lti/login``: the platform starts an OIDC login. The issuer (and client id and
   deployment, when sent) must be registered, the ``target_link_uri`` must be ours. A new
   ``state`` and ``nonce`` are remembered in SQLite, bound to this browser by the
   ``lmwb_lti_browser`` cookie (``HttpOnly; SameSite=None; Secure``: it must come back with the
   platform's cross-site POST; browsers accept ``Secure`` on ``http://localhost``). Then a
   redirect to the platform's auth URL. Inside a frame (``Sec-Fetch-Dest: iframe``) the page
   offers "Open in a new window" instead, since the app's cookies cannot work there.
2. ``POST /lti/launch``: the platform posts ``id_token`` and ``state``. The state must be
   one we issued to the browser posting it; the token is checked (``verify.py``); its nonce
   is spent once in SQLite; the account is found or made (``identity.py``). A new session
   (the ``Store`` sessions password sign-in uses) is offered as a one-time code.
3. The launch's answer is a page on our own site that posts that code to ``/lti/enter``:
   a same-site request, so the app's ``SameSite=Strict`` session cookie is set and then
   sent; ``/lti/enter`` answers with it (the same ``Cookie``/``HANDOFF`` machinery as the
   password sign-in) and redirects to the page the launch targeted.

``GET /lti/jwks`` serves the tool's public keys; ``GET /lti/config`` the URLs a Moodle admin
pastes. Every refusal is a plain page (``html.py``) and a warning on the ``workbook.lti``
logger with a reference the page shows.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from db import ConflictError, NotFoundError, Store
from workbook.config import Settings
from workbook.lti.html import Page, handoff_page, link_pending_page, new_window_page, refusal_page
from workbook.lti.identity import admit
from workbook.lti.verify import KeySets, LaunchRefused, verify_id_token
from workbook.web.sign_in_cookies import HANDOFF, SESSION_COOKIE, Cookie, is_token

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = ["LtiEndpoints", "lti_routes"]

log = logging.getLogger("workbook.lti")

LOGIN_PATH, LAUNCH_PATH, ENTER_PATH = "/lti/login", "/lti/launch", "/lti/enter"
JWKS_PATH, CONFIG_PATH = "/lti/jwks", "/lti/config"
BROWSER_COOKIE = "lmwb_lti_browser"
LOGIN_TTL_S = 600  # a login must come back as a launch within this time
LOGIN_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "client_id",
    "lti_deployment_id",
)


def _secure(request: Request) -> bool:
    # Behind a TLS-terminating proxy the app sees http; the proxy says what the browser used.
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _framed(request: Request) -> bool:
    return request.headers.get("sec-fetch-dest") in ("iframe", "frame")


class LtiEndpoints:
    """The LTI routes, with the settings, store and key-set cache they share.

    Args:
        settings: defaults to ``Settings.from_env()`` at the first request.
        store: defaults to a ``Store`` on ``settings.db_path`` opened at the first request.
        keys: the platforms' key-set cache.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        store: Store | None = None,
        keys: KeySets | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self.keys = keys or KeySets()
        self._lock = threading.Lock()

    # --- what the routes share -----------------------------------------------------------
    @property
    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:
                self._settings = Settings.from_env()
            return self._settings

    @property
    def store(self) -> Store:
        settings = self.settings
        with self._lock:
            if self._store is None:
                self._store = Store(settings.db_path)
            return self._store

    def base_url(self, request: Request) -> str:
        """The tool's public address: ``WORKBOOK_PUBLIC_URL``, else the request's own."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        scheme = "https" if _secure(request) else request.url.scheme
        host = request.headers.get("x-forwarded-host") or request.headers.get("host")
        return f"{scheme}://{host or request.url.netloc}"

    def routes(self) -> list[Route]:
        """The Starlette routes to mount."""
        from starlette.routing import Route

        return [
            Route(LOGIN_PATH, self.login, methods=["GET", "POST"]),
            Route(LAUNCH_PATH, self.launch, methods=["POST"]),
            Route(ENTER_PATH, self.enter, methods=["POST"]),
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route(CONFIG_PATH, self.config, methods=["GET"]),
        ]

    # --- the endpoints -------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        """OIDC third-party-initiated login: check it, remember state, go to the platform."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import RedirectResponse

        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        params = {k: params[k].strip() for k in LOGIN_PARAMS if params.get(k, "").strip()}
        try:
            platform = await run_in_threadpool(self._login_platform, request, params)
        except LaunchRefused as refused:
            return self._refuse(request, refused, params.get("iss", ""))
        if _framed(request):
            url = f"{self.base_url(request)}{LOGIN_PATH}?{urlencode(params)}"
            return self._page(new_window_page(url))
        browser = request.cookies.get(BROWSER_COOKIE, "")
        if not (is_token(browser) and 20 <= len(browser) <= 100):
            browser = secrets.token_urlsafe(32)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        await run_in_threadpool(
            lambda: self.store.start_lti_login(
                state=state,
                browser=browser,
                issuer=platform.issuer,
                client_id=platform.client_id,
                nonce=nonce,
                login_params=params,
                ttl_s=LOGIN_TTL_S,
            )
        )
        query = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": platform.client_id,
            "redirect_uri": self.base_url(request) + LAUNCH_PATH,
            "login_hint": params["login_hint"],
            "state": state,
            "nonce": nonce,
        }
        if "lti_message_hint" in params:
            query["lti_message_hint"] = params["lti_message_hint"]
        separator = "&" if urlsplit(platform.auth_url).query else "?"
        response = RedirectResponse(
            f"{platform.auth_url}{separator}{urlencode(query)}",
            status_code=302,
            headers={"Cache-Control": "no-store"},
        )
        # SameSite=None: the platform's launch POST is cross-site and must carry it back.
        response.set_cookie(
            BROWSER_COOKIE,
            browser,
            max_age=LOGIN_TTL_S,
            path="/lti/",
            secure=True,
            httponly=True,
            samesite="none",
        )
        return response

    def _login_platform(self, request: Request, params: dict[str, str]) -> Any:
        for needed in ("iss", "login_hint", "target_link_uri"):
            if needed not in params:
                raise LaunchRefused("bad-login", f"the login request has no {needed}")
        try:
            platform = self.store.lti_platform(
                params["iss"], params.get("client_id"), params.get("lti_deployment_id")
            )
        except NotFoundError:
            raise LaunchRefused(
                "unknown-platform",
                f"no registration for issuer {params['iss']!r}, client"
                f" {params.get('client_id')!r}, deployment {params.get('lti_deployment_id')!r}",
                "the workbook does not know this course site yet. Please tell your instructor:"
                " the site administrator must register it (python -m db lti add-platform).",
            ) from None
        if self._target_path(request, params["target_link_uri"]) is None:
            raise LaunchRefused("foreign-target", "target_link_uri is not an address of this tool")
        return platform

    async def launch(self, request: Request) -> Response:
        """The redirect URI: verify the launch and sign its user in (module docstring)."""
        from starlette.concurrency import run_in_threadpool

        form = await request.form()
        state, token = form.get("state"), form.get("id_token")
        browser = request.cookies.get(BROWSER_COOKIE)
        try:
            return await run_in_threadpool(self._launch, request, state, token, browser)
        except LaunchRefused as refused:
            return self._refuse(request, refused, "")

    def _launch(self, request: Request, state: Any, token: Any, browser: str | None) -> Response:
        if not isinstance(state, str) or not state:
            raise LaunchRefused("missing-state", "the launch carries no state")
        try:
            login = self.store.lti_login(state, browser)
        except NotFoundError:
            raise LaunchRefused(
                "unknown-state", "no login of ours has this state (or it expired)"
            ) from None
        if _framed(request) or not browser:
            # In a frame the app's SameSite=Strict session cookie can never work, and a
            # browser that withheld our cookie blocks them here: start again in a window
            # of its own, where they work.
            url = f"{self.base_url(request)}{LOGIN_PATH}?{urlencode(login.login_params)}"
            log.info("LTI launch in a frame or without cookies: offered a new window")
            return self._page(new_window_page(url), status=403)
        if not login.same_browser:
            raise LaunchRefused("foreign-state", "the state was issued to another browser")
        if not isinstance(token, str) or not token:
            raise LaunchRefused("missing-token", "the launch carries no id_token")
        skew = self.settings.lti_clock_skew_s
        platform, claims = verify_id_token(
            token, login=login, store=self.store, keys=self.keys, skew_s=skew
        )
        try:
            # Kept until the token could no longer pass the exp check anyway.
            keep_s = max(claims.expires_at - time.time(), 0) + skew + 60
            self.store.use_lti_nonce(claims.nonce, platform.issuer, ttl_s=keep_s)
        except ConflictError:
            raise LaunchRefused("replayed", "this id_token's nonce was used before") from None
        admission = admit(self.store, claims)
        if admission.user is None:
            log.info("LTI launch by %s/%s waits for a password sign-in", claims.issuer, claims.sub)
            return self._page(link_pending_page(admission.link_email, self.base_url(request) + "/"))
        token_value = self.store.start_session(admission.user.id)
        code = HANDOFF.offer(
            [Cookie(SESSION_COOKIE, token_value, self.settings.session_idle_min * 60)]
        )
        target = self._target_path(request, claims.target_link_uri) or "/"
        log.info(
            "LTI launch: user %s (%s) from %s, context %s",
            admission.user.id,
            admission.user.role,
            claims.issuer,
            admission.context.id if admission.context else None,
        )
        return self._page(handoff_page(ENTER_PATH, code, target))

    async def enter(self, request: Request) -> Response:
        """Same-site step: trade the launch's one-time code for the session cookie."""
        from starlette.responses import RedirectResponse

        form = await request.form()
        code, target = form.get("code"), form.get("target")
        cookies = HANDOFF.take(code) if isinstance(code, str) else ()
        if not cookies:
            refused = LaunchRefused(
                "used-code",
                "the sign-in code was unknown, used or expired",
                "this sign-in step was already used or has expired. Open the workbook from the"
                " course again; if it keeps happening, tell your instructor.",
            )
            return self._refuse(request, refused, "")
        path = target if isinstance(target, str) and target.startswith("/") else "/"
        if path.startswith("//") or "\\" in path:
            path = "/"  # never a redirect to another host
        response = RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})
        for cookie in cookies:
            response.headers.append("set-cookie", cookie.header(secure=_secure(request)))
        return response

    async def jwks(self, request: Request) -> Response:
        """The tool's public key set (current and not yet expired keys)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        keys = await run_in_threadpool(lambda: self.store.lti_tool_keys().jwks())
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})

    async def config(self, request: Request) -> Response:
        """What a Moodle admin pastes into "External tool" (README, "Moodle (LTI 1.3)")."""
        from starlette.responses import JSONResponse

        base = self.base_url(request)
        return JSONResponse(
            {
                "tool_name": "LM Logits Workbook",
                "lti_version": "LTI 1.3",
                "tool_url": base + "/",
                "public_key_type": "Keyset URL",
                "public_keyset_url": base + JWKS_PATH,
                "initiate_login_url": base + LOGIN_PATH,
                "redirection_uris": [base + LAUNCH_PATH],
                "services": {
                    "ims_lti_assignment_and_grade_services": "Use this service for grade sync"
                    " and column management",
                    "ims_lti_names_and_role_provisioning": "Use this service to retrieve"
                    " members' information as per privacy settings",
                },
                "privacy": {"share_launcher_name": "Always", "share_launcher_email": "Always"},
                "default_launch_container": "New window",
                "register_with": "python -m db lti add-platform --issuer PLATFORM_ID"
                " --client-id CLIENT_ID --deployment-id DEPLOYMENT_ID --auth-url"
                " AUTHENTICATION_REQUEST_URL --token-url ACCESS_TOKEN_URL --keyset-url"
                " PUBLIC_KEYSET_URL",
            },
            headers={"Cache-Control": "no-store"},
        )

    # --- helpers -------------------------------------------------------------------------
    def _target_path(self, request: Request, uri: str) -> str | None:
        """The path (and query) of ``uri`` inside this tool, or ``None`` when it is foreign."""
        base = urlsplit(self.base_url(request))
        target = urlsplit(uri)
        if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc.lower()):
            return None
        prefix = base.path.rstrip("/")
        if not (target.path == prefix or target.path.startswith(prefix + "/")):
            return None
        if target.path.startswith(prefix + "/lti/"):
            return prefix + "/"  # the launch URL itself targets Home
        return target.path + (f"?{target.query}" if target.query else "") or "/"

    def _page(self, page: Page, status: int = 200) -> Response:
        from starlette.responses import HTMLResponse

        return HTMLResponse(page.html, status_code=status, headers=page.headers())

    def _refuse(self, request: Request, refused: LaunchRefused, issuer: str) -> Response:
        reference = secrets.token_hex(4)
        log.warning(
            "LTI launch refused [%s] ref %s: %s (issuer %r, client address %s)",
            refused.code,
            reference,
            refused.detail,
            issuer,
            request.client.host if request.client else "?",
        )
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return self._page(refusal_page(refused.code, refused.advice, reference, when), 403)


def lti_routes(
    settings: Settings | None = None, store: Store | None = None, keys: KeySets | None = None
) -> list[Route]:
    """The routes for ``serve.py``; nothing is opened until the first request."""
    return LtiEndpoints(settings, store, keys).routes()
