"""The launch's ``id_token`` checked as LTI 1.3 (1EdTech Security Framework) requires.

Why PyJWT under a thin module of ours, not PyLTI1p3 (or its fork ``pylti1p3next``):
PyLTI1p3's ``MessageLaunch`` wants adapters for our request, cookies, session and cache,
keeps the OIDC state in a session we do not have outside Streamlit, and decides the
redirect flow itself; the launch here needs its state bound to the browser through our own
SQLite rows and cookies, and must hand over to the app's own session machinery. PyJWT
(maintained, the library PyLTI1p3 itself verifies with) does the cryptography: RS256
signatures, ``exp``/``iat`` with leeway, ``aud`` and required claims, and ``PyJWKClient``
fetches and caches a platform's key set and refetches it once for an unknown ``kid``. The
LTI-specific checks it cannot know are each written out below and each has its own test.

Checks, in order (each refusal names what failed in ``LaunchRefused.code``):

1. the token is a JWT whose header says ``RS256`` and names a ``kid``;
2. its ``iss`` is the issuer the login started with, its ``aud`` holds that login's client
   id, and its deployment id is registered for that (issuer, client id);
3. the signature verifies with the platform key named by ``kid`` (key set cached; an unknown
   ``kid`` refetches the set once; a failed refetch refuses);
4. ``exp`` and ``iat`` hold within the configured clock skew; ``sub``, ``nonce`` present;
5. ``azp`` equals the client id when ``aud`` has several values (and whenever present);
6. the ``nonce`` is the one this login issued (its single use is kept by the store);
7. the message type is ``LtiResourceLinkRequest`` and the version ``1.3.0``; roles present.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import jwt

from db import LtiLogin, LtiPlatform, NotFoundError, Store
from workbook.errors import WorkbookError

__all__ = ["KeySets", "LaunchClaims", "LaunchRefused", "verify_id_token"]

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
LTI_VERSION = "1.3.0"

ASK_ADMIN = (
    "the workbook could not check this launch from the course. Please tell your instructor,"
    " with the time and the reference below; the site administrator can look it up."
)


class LaunchRefused(WorkbookError):
    """A launch the tool will not accept.

    Attributes:
        code: a short name of the failed check (``"expired"``, ``"wrong-audience"`` ...),
            shown on the page and logged.
        detail: what the operator's log says (never any part of the token itself).
        advice: what the person who launched should tell their instructor.
    """

    def __init__(self, code: str, detail: str, advice: str = ASK_ADMIN) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.advice = advice


@dataclass(frozen=True)
class LaunchClaims:
    """What a verified launch says, reduced to what the workbook uses."""

    issuer: str
    client_id: str
    deployment_id: str
    sub: str
    name: str
    email: str
    roles: tuple[str, ...]
    context_id: str
    context_title: str
    context_label: str
    target_link_uri: str
    ags_lineitem: str | None
    ags_lineitems: str | None
    ags_scopes: tuple[str, ...]
    nrps_url: str | None
    nonce: str
    expires_at: int


class KeySets:
    """Each platform's key set, fetched with ``PyJWKClient`` and cached.

    Args:
        lifespan_s: how long a fetched key set is trusted before the next fetch.
        refetch_cooldown_s: at least this long between two refetches for unknown ``kid`` s
            of one key set (a forged ``kid`` must not make us hammer the platform).
        timeout_s: how long one fetch may take.
    """

    def __init__(
        self, lifespan_s: float = 300.0, refetch_cooldown_s: float = 5.0, timeout_s: float = 5.0
    ) -> None:
        self.lifespan_s = lifespan_s
        self.refetch_cooldown_s = refetch_cooldown_s
        self.timeout_s = timeout_s
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def key(self, keyset_url: str, kid: str) -> Any:
        """The public key ``kid`` of the platform's key set (refetched once if unknown).

        Raises:
            LaunchRefused: ``unknown-key`` when no key has that id, even after a refetch, or
                the key set cannot be fetched.
        """
        with self._lock:
            client = self._clients.get(keyset_url)
            if client is None:
                client = jwt.PyJWKClient(
                    keyset_url,
                    lifespan=self.lifespan_s,
                    timeout=self.timeout_s,
                    cooldown_duration=self.refetch_cooldown_s,
                )
                self._clients[keyset_url] = client
        try:
            return client.get_signing_key(kid).key
        except jwt.PyJWKClientError as error:
            raise LaunchRefused(
                "unknown-key",
                f"no key {kid!r} in the platform's key set {keyset_url} ({error})",
            ) from None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def verify_id_token(
    token: str, *, login: LtiLogin, store: Store, keys: KeySets, skew_s: float
) -> tuple[LtiPlatform, LaunchClaims]:
    """Check a launch's ``id_token`` against the login it answers (module docstring's list).

    Args:
        token: the ``id_token`` form field.
        login: the OIDC login this tool started (its issuer, client id and nonce).
        store: where the platforms are registered.
        keys: the platforms' key sets.
        skew_s: clock difference allowed on ``exp`` and ``iat``.

    Returns:
        The platform registration (deployment) and the claims.

    Raises:
        LaunchRefused: any check failed.
    """
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise LaunchRefused("malformed-token", "the id_token is not a readable JWT") from None
    if header.get("alg") != "RS256" or not _text(header.get("kid")):
        raise LaunchRefused(
            "bad-header", f"alg {header.get('alg')!r}, kid present: {'kid' in header}"
        )
    issuer = _text(unverified.get("iss")).rstrip("/")
    if issuer != login.issuer.rstrip("/"):
        raise LaunchRefused("wrong-issuer", "the token's iss is not the issuer of the login")
    audience = unverified.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if login.client_id not in audiences:
        raise LaunchRefused("wrong-audience", f"aud does not hold client id {login.client_id!r}")
    deployment_id = _text(unverified.get(CLAIM + "deployment_id"))
    try:
        platform = store.lti_platform(issuer, login.client_id, deployment_id)
    except NotFoundError:
        raise LaunchRefused(
            "unknown-deployment",
            f"deployment {deployment_id!r} of client {login.client_id!r} on {issuer} is not"
            " registered (python -m db lti add-platform)",
        ) from None

    key = keys.key(platform.keyset_url, header["kid"])
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=platform.client_id,
            leeway=skew_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
        )
    except jwt.InvalidSignatureError:
        raise LaunchRefused("bad-signature", "the signature does not verify") from None
    except jwt.ExpiredSignatureError:
        raise LaunchRefused("expired", f"exp is past (allowed skew {skew_s:g} s)") from None
    except jwt.ImmatureSignatureError:
        raise LaunchRefused("not-yet-valid", f"iat is in the future (skew {skew_s:g} s)") from None
    except jwt.InvalidAudienceError:
        raise LaunchRefused("wrong-audience", "aud does not hold the client id") from None
    except jwt.MissingRequiredClaimError as error:
        raise LaunchRefused("missing-claim", f"the claim {error.claim!r} is missing") from None
    except jwt.InvalidTokenError as error:
        raise LaunchRefused("invalid-token", type(error).__name__) from None

    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != platform.client_id:
        raise LaunchRefused("wrong-azp", "azp is missing or is not the client id")
    if claims.get("nonce") != login.nonce:
        raise LaunchRefused("wrong-nonce", "the nonce is not the one this login issued")
    if claims.get(CLAIM + "message_type") != RESOURCE_LINK_REQUEST:
        raise LaunchRefused(
            "wrong-message-type",
            f"message type {claims.get(CLAIM + 'message_type')!r}",
            "the course's link to the workbook is set up for another kind of launch (such as"
            " content selection). Please tell your instructor that only plain links work.",
        )
    if claims.get(CLAIM + "version") != LTI_VERSION:
        raise LaunchRefused("wrong-version", f"LTI version {claims.get(CLAIM + 'version')!r}")
    roles = claims.get(CLAIM + "roles")
    if not isinstance(roles, list) or not _text(claims.get("sub")):
        raise LaunchRefused("missing-claim", "sub or roles are missing (anonymous launch)")
    return platform, _claims(claims, platform)


def _claims(claims: dict[str, Any], platform: LtiPlatform) -> LaunchClaims:
    context = claims.get(CLAIM + "context") or {}
    ags = claims.get(AGS_CLAIM) or {}
    nrps = claims.get(NRPS_CLAIM) or {}
    given = " ".join(_text(claims.get(k)) for k in ("given_name", "family_name")).strip()
    return LaunchClaims(
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_id=platform.deployment_id,
        sub=_text(claims["sub"]),
        name=_text(claims.get("name")) or given,
        email=_text(claims.get("email")),
        roles=tuple(r for r in claims[CLAIM + "roles"] if isinstance(r, str)),
        context_id=_text(context.get("id")),
        context_title=_text(context.get("title")),
        context_label=_text(context.get("label")),
        target_link_uri=_text(claims.get(CLAIM + "target_link_uri")),
        ags_lineitem=_text(ags.get("lineitem")) or None,
        ags_lineitems=_text(ags.get("lineitems")) or None,
        ags_scopes=tuple(s for s in ags.get("scope") or () if isinstance(s, str)),
        nrps_url=_text(nrps.get("context_memberships_url")) or None,
        nonce=str(claims["nonce"]),
        expires_at=int(claims["exp"]),
    )
