"""Assignment and Grade Services: scores for the platform's gradebook, and the access token.

A tool calls a platform's services with an OAuth 2 access token that it gets from the
platform's token URL by the client-credentials grant, proving who it is with a short JWT
signed by its own key (1EdTech Security Framework, "Using JSON Web Tokens with OAuth 2.0
Client Credentials Grants"). PyJWT signs it; ``requests`` carries the calls. Tokens are cached
per (token URL, client id, scope) until shortly before they expire.

A score goes to ``<line item>/scores``. Moodle's line item URLs carry a query string
(``.../lineitem?type_id=3``), so ``/scores`` is added to the path, before the query.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from workbook.errors import WorkbookError

if TYPE_CHECKING:
    from db import SigningKey

__all__ = [
    "NRPS_SCOPE",
    "SCORE_MEDIA_TYPE",
    "SCORE_SCOPE",
    "AccessTokens",
    "LtiServiceError",
    "PlatformRefused",
    "PlatformUnavailable",
    "client_assertion",
    "post_score",
    "score_payload",
    "scores_url",
]

SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The client assertion only has to live until the token request arrives.
ASSERTION_LIFETIME_S = 300
# A cached token is dropped this long before the platform says it expires (clock skew and
# the time a request takes).
TOKEN_MARGIN_S = 60
HTTP_TIMEOUT_S = 15.0


class LtiServiceError(WorkbookError):
    """A call to a platform's service (token, scores, class list) did not work."""


class PlatformRefused(LtiServiceError):
    """The platform answered and refused; sending the same again would not help.

    Attributes:
        status: the HTTP status (``None``: the request could not even be made, e.g. a line
            item address that is not a URL).
    """

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class PlatformUnavailable(LtiServiceError):
    """The platform could not be reached, or answered with a temporary failure.

    Attributes:
        status: the HTTP status, or ``None`` when there was no answer.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def client_assertion(
    client_id: str, token_url: str, key: SigningKey, *, now: float | None = None
) -> str:
    """The JWT that proves the tool's identity to the platform's token URL (RS256).

    ``iss`` and ``sub`` are the tool's client id, ``aud`` the token URL; a fresh ``jti``
    lets the platform refuse a replay. ``key`` is the tool's current key
    (``workbook.lti.tool_keys(store).current()``: ``kid`` and ``private_pem``).
    """
    import jwt

    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_S,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


class AccessTokens:
    """Access tokens from platforms' token URLs, cached until shortly before they expire.

    Shared by the outbox's thread and the pages' threads (one lock).

    Args:
        signer: returns the tool's current signing key (read on every new token, so a
            rotated key is used from then on).
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(
        self, signer: Callable[[], SigningKey], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._signer = signer
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[str, float]] = {}

    def token(self, token_url: str, client_id: str, scope: str) -> str:
        """A bearer token for ``scope`` on that platform (cached, else requested).

        Raises:
            PlatformRefused: the platform refused the tool's request (wrong client id,
                a key it does not know, a scope it does not grant).
            PlatformUnavailable: the token URL could not be reached or failed.
        """
        key = (token_url, client_id, scope)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] > self._clock():
                return cached[0]
        token, lifetime = self._request(token_url, client_id, scope)
        with self._lock:
            self._cache[key] = (token, self._clock() + max(0.0, lifetime - TOKEN_MARGIN_S))
        return token

    def forget(self, token_url: str, client_id: str, scope: str) -> None:
        """Drop a cached token the platform no longer accepts (it answered 401)."""
        with self._lock:
            self._cache.pop((token_url, client_id, scope), None)

    def _request(self, token_url: str, client_id: str, scope: str) -> tuple[str, float]:
        import requests

        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_id, token_url, self._signer(), now=self._clock()
            ),
            "scope": scope,
        }
        try:
            response = requests.post(
                token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=HTTP_TIMEOUT_S,
                allow_redirects=False,  # see post_score
            )
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"Moodle's token URL could not be reached ({exc}).") from exc
        if response.is_redirect:
            raise PlatformRefused(redirect_text(response, "token URL"), status=response.status_code)
        if response.status_code != 200:
            error = _error_text(response)
            if 400 <= response.status_code < 500:
                raise PlatformRefused(
                    f"Moodle refused the workbook's access request (HTTP {response.status_code}:"
                    f" {error}). Check the tool's registration (client id, key set URL, services).",
                    status=response.status_code,
                )
            raise PlatformUnavailable(
                f"Moodle's token URL failed (HTTP {response.status_code}: {error}).",
                status=response.status_code,
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformUnavailable(
                "Moodle's token URL answered without an access token."
            ) from exc
        return token, lifetime


def scores_url(lineitem: str) -> str:
    """The score service of a line item: ``/scores`` appended to its path, query kept.

    >>> scores_url("https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem?type_id=1")
    'https://moodle.example/mod/lti/services.php/2/lineitems/5/lineitem/scores?type_id=1'
    """
    parts = urlsplit(lineitem)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores", fragment=""))


def score_payload(
    *,
    user_id: str,
    activity: str,
    grading: str,
    score_given: float | None = None,
    score_maximum: float | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """A score as AGS defines it, without its ``timestamp`` (the outbox adds that).

    Args:
        user_id: the student's LTI ``sub``.
        activity: ``activityProgress`` (``"Completed"``, ``"Submitted"`` ...).
        grading: ``gradingProgress`` (``"FullyGraded"``, ``"PendingManual"`` ...).
        score_given: points; sent together with ``score_maximum`` only.
        comment: shown to the student beside the grade.
    """
    payload: dict[str, Any] = {
        "userId": user_id,
        "activityProgress": activity,
        "gradingProgress": grading,
    }
    if score_given is not None and score_maximum is not None:
        payload["scoreGiven"] = float(score_given)
        payload["scoreMaximum"] = float(score_maximum)
    if comment:
        payload["comment"] = comment
    return payload


def post_score(lineitem: str, token: str, payload: Mapping[str, Any]) -> int:
    """Post one score to a line item's score service.

    Returns:
        The HTTP status (2xx: received).

    Raises:
        PlatformRefused: the platform answered 4xx other than 401, 408 and 429 (the
            message carries what it said). 409 is raised too: the caller decides. Also a
            redirect, and a line item address that is not a URL: trying again cannot help.
        PlatformUnavailable: no answer, a 5xx, 401 (token no longer valid), 408 or 429.
    """
    import requests

    try:
        url = scores_url(lineitem)
        # Redirects are not followed: requests would turn the POST into a GET (301, 302,
        # 303), and whatever page answered that GET would count as the score received.
        response = requests.post(
            url,
            json=dict(payload),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": SCORE_MEDIA_TYPE,
                "Accept": "application/json",
            },
            timeout=HTTP_TIMEOUT_S,
            allow_redirects=False,
        )
    except ValueError as exc:  # also requests' InvalidURL, MissingSchema, InvalidSchema
        raise PlatformRefused(
            f"The grade's line item address from Moodle is not a usable URL ({exc}); launch "
            "the activity again from Moodle, then release the grade again.",
            status=None,
        ) from exc
    except requests.RequestException as exc:
        raise PlatformUnavailable(f"Moodle could not be reached ({exc}).") from exc
    status = response.status_code
    if 200 <= status < 300:
        return status
    if response.is_redirect:
        raise PlatformRefused(redirect_text(response, "grade service"), status=status)
    error = _error_text(response)
    if status in (401, 408, 429) or status >= 500:
        raise PlatformUnavailable(
            f"Moodle did not take the score now (HTTP {status}: {error}).", status=status
        )
    raise PlatformRefused(f"Moodle refused the score (HTTP {status}: {error}).", status=status)


def redirect_text(response: Any, what: str) -> str:
    """Why a redirect is refused, with where it pointed (the address, never a token)."""
    where = " ".join(str(response.headers.get("location", "")).split())[:200] or "nowhere"
    return (
        f"Moodle's {what} answered with a redirect (HTTP {response.status_code} to {where}); "
        "check that the site's address in the tool's registration is the one Moodle uses "
        "(https, host name)."
    )


def _error_text(response: Any, limit: int = 300) -> str:
    """What a platform said about an error, short and on one line (never a token)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        text = body.get("error_description") or body.get("error") or body.get("message") or ""
        text = str(text)
    else:
        text = response.text or response.reason or ""
    flat = " ".join(str(text).split())
    return (flat[: limit - 1] + "…" if len(flat) > limit else flat) or "no details"
