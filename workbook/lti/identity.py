"""Who a verified launch signs in: the account for (issuer, ``sub``), its role and course.

Rules (README, "Moodle (LTI 1.3)"):

- an LTI user is keyed on (issuer, ``sub``), never on the email alone;
- ``Learner`` makes a student; ``Instructor`` (Moodle sends it for teachers and for
  non-editing teachers alike) or a teaching assistant makes a TA. A workbook instructor is
  only ever made from the shell (``python -m db add-user --role instructor``);
- a first launch whose email belongs to an existing password account does not sign in: the
  link waits until that account signs in once with its password (``Workbook.sign_in``
  confirms it), so whoever controls an email on the platform cannot take over an account;
- name and email follow the platform's latest claims; each launch records its context and
  the membership with the launch's grade (AGS) and roster (NRPS) service URLs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from db import DbError, LtiContext, NotFoundError, Store, User, ValidationError
from db import validation as check
from workbook.lti.verify import LaunchClaims, LaunchRefused

__all__ = ["Admission", "admit", "workbook_role"]

_MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
TA_ROLES = frozenset(
    {
        f"{_MEMBERSHIP}#Instructor",
        f"{_MEMBERSHIP}/Instructor#TeachingAssistant",
        "Instructor",  # the short form LTI 1.3 also allows for context roles
    }
)
STUDENT_ROLES = frozenset({f"{_MEMBERSHIP}#Learner", f"{_MEMBERSHIP}/Learner#Learner", "Learner"})
NO_CONTEXT = "(no course)"


@dataclass(frozen=True)
class Admission:
    """What a launch leads to.

    Attributes:
        user: the account signed in, or ``None`` when a link must be confirmed first.
        context: the course the launch came from (``None`` with ``user``).
        link_email: the password account's email waiting for its owner to sign in.
    """

    user: User | None
    context: LtiContext | None
    link_email: str = ""


def workbook_role(roles: tuple[str, ...]) -> str | None:
    """``"ta"`` for an instructor role, else ``"student"`` for a learner, else ``None``."""
    if TA_ROLES.intersection(roles):
        return "ta"
    if STUDENT_ROLES.intersection(roles):
        return "student"
    return None


def _email(raw: str) -> str:
    try:
        return check.email(raw) if raw else ""
    except ValidationError:
        return ""


def _stand_in_email(issuer: str, sub: str) -> str:
    # A platform may withhold the email (privacy settings); the account still needs one.
    digest = hashlib.sha256(f"{issuer}\n{sub}".encode()).hexdigest()[:20]
    return f"lti-{digest}@lti.invalid"


def admit(store: Store, claims: LaunchClaims) -> Admission:
    """The account a verified launch signs in, updated from its claims, and its course.

    Raises:
        LaunchRefused: a role the workbook has no place for, or an archived account.
    """
    role = workbook_role(claims.roles)
    if role is None:
        raise LaunchRefused(
            "unknown-role",
            f"roles {list(claims.roles)!r} hold neither Learner nor Instructor",
            "your role in this course is neither student nor teacher, and the workbook only"
            " opens for those. Please tell your instructor.",
        )
    email = _email(claims.email)
    name = claims.name[: check.MAX_NAME] or "Course member"
    try:
        user = store.lti_user(claims.issuer, claims.sub)
    except NotFoundError:
        user = None
    try:
        if user is None:
            owner = _account_with(store, email)
            if owner is not None:
                _refuse_archived(owner)
                if store.is_launch_only(owner.id):
                    # Another platform user has this email, and no password can confirm.
                    raise LaunchRefused(
                        "email-taken",
                        f"email of account {owner.id} already belongs to another platform user",
                        "another course login already uses your email address in the"
                        " workbook. Please tell your instructor.",
                    )
                store.request_lti_link(claims.issuer, claims.sub, owner.id)
                return Admission(user=None, context=None, link_email=owner.email)
            user = store.create_lti_user(
                issuer=claims.issuer,
                sub=claims.sub,
                email=email or _stand_in_email(claims.issuer, claims.sub),
                name=name,
                role=role,
            )
        _refuse_archived(user)
        user = store.update_lti_user(user.id, name=name, email=email or None, role=role)
        context = store.record_lti_launch(
            user.id,
            issuer=claims.issuer,
            deployment_id=claims.deployment_id,
            context_id=claims.context_id or NO_CONTEXT,
            title=claims.context_title[: check.MAX_NAME],
            label=claims.context_label[: check.MAX_NAME],
            role=role,
            ags_lineitem=claims.ags_lineitem,
            ags_lineitems=claims.ags_lineitems,
            ags_scopes=claims.ags_scopes,
            nrps_url=claims.nrps_url,
        )
    except DbError as error:
        raise LaunchRefused("cannot-save", f"{type(error).__name__}: {error}") from None
    return Admission(user=user, context=context)


def _account_with(store: Store, email: str) -> User | None:
    if not email:
        return None
    try:
        return store.user_by_email(email)
    except NotFoundError:
        return None


def _refuse_archived(user: User) -> None:
    if user.archived:
        raise LaunchRefused(
            "archived-account",
            f"account {user.id} is archived",
            "your workbook account has been archived. Please tell your instructor.",
        )
