"""Names and Role Provisioning Services: the class list of a course, read from the platform.

The context memberships URL (from a launch's NRPS claim) answers with one page of members;
a ``Link: <...>; rel="next"`` header points to the next page, until a page has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from workbook.lti.ags import HTTP_TIMEOUT_S, PlatformRefused, PlatformUnavailable, redirect_text

__all__ = ["MEMBERSHIP_MEDIA_TYPE", "Member", "fetch_members"]

MEMBERSHIP_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
# A class list longer than this many pages is cut there: "next" links that never end must
# not keep a TA's page waiting for ever (a page repeated is not read twice either).
MAX_PAGES = 200


@dataclass(frozen=True)
class Member:
    """One member of a course as the platform lists it.

    Attributes:
        sub: the member's LTI user id (``user_id`` in NRPS, ``sub`` in a launch).
        roles: the role URIs (or short names) the platform gave.
        status: ``"Active"`` (the default), ``"Inactive"`` or ``"Deleted"``.
    """

    sub: str
    name: str
    email: str
    roles: tuple[str, ...]
    status: str = "Active"

    @property
    def is_active_student(self) -> bool:
        """An active member with the Learner role (full URI or Moodle's short form)."""
        learner = any(role == LEARNER or role == "Learner" for role in self.roles)
        return learner and self.status == "Active"


def fetch_members(url: str, token: str) -> list[Member]:
    """Every member listed at a context memberships URL, following ``rel="next"`` pages.

    Raises:
        PlatformRefused: the platform refused (4xx), or answered with a redirect (not
            followed).
        PlatformUnavailable: no answer, a 5xx, a 401 (token no longer valid), or a body that
            is not a membership container (no ``members`` list).
    """
    import requests

    members: list[Member] = []
    seen: set[str] = set()
    next_url: str | None = url
    pages = 0
    while next_url and next_url not in seen and pages < MAX_PAGES:
        seen.add(next_url)
        pages += 1
        try:
            response = requests.get(
                next_url,
                headers={"Authorization": f"Bearer {token}", "Accept": MEMBERSHIP_MEDIA_TYPE},
                timeout=HTTP_TIMEOUT_S,
                # Not followed, as for scores: a sign-in page behind a redirect is not a class
                # list, and the bearer token must not go wherever the redirect points.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise PlatformUnavailable(f"Moodle's class list could not be reached ({exc}).") from exc
        status = response.status_code
        if response.is_redirect:
            raise PlatformRefused(redirect_text(response, "class list service"), status=status)
        if status == 401 or status >= 500:
            raise PlatformUnavailable(
                f"Moodle's class list is not available now (HTTP {status}).", status=status
            )
        if status != 200:
            raise PlatformRefused(
                f"Moodle refused to send the class list (HTTP {status}). Check that the tool's "
                "registration shares the roster (Names and Role Provisioning).",
                status=status,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformUnavailable("Moodle's class list was not readable JSON.") from exc
        listed = body.get("members") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            # Read as "nobody", it would replace the class list kept so far with an empty one.
            raise PlatformUnavailable("Moodle's answer was not a class list (no members).")
        members += [_member(entry) for entry in listed if isinstance(entry, dict)]
        next_url = response.links.get("next", {}).get("url")
        if next_url and _origin(next_url) != _origin(url):
            # The token is for this platform only: never follow a page to another host.
            raise PlatformRefused(
                "Moodle's class list pointed to another site for its next page; not followed.",
                status=status,
            )
    return [m for m in members if m.sub]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _member(entry: dict) -> Member:
    name = entry.get("name") or " ".join(
        part for part in (entry.get("given_name"), entry.get("family_name")) if part
    )
    roles = entry.get("roles") or []
    return Member(
        sub=str(entry.get("user_id") or ""),
        name=str(name or ""),
        email=str(entry.get("email") or ""),
        roles=tuple(str(role) for role in roles) if isinstance(roles, list) else (),
        status=str(entry.get("status") or "Active"),
    )
