"""lti: the workbook as an LTI 1.3 tool, so that Moodle (or any LTI platform) launches it.

- ``keys``: the tool's RSA signing keys and public key set (kept by ``db/lti_keys.py``);
- ``verify``: the launch's ``id_token`` checked as LTI 1.3 requires (PyJWT under our checks);
- ``identity``: who a launch signs in (issuer + ``sub``), their role, course and services;
- ``routes``: the four endpoints ``serve.py`` mounts (``/lti/login``, ``/lti/launch``,
  ``/lti/jwks``, ``/lti/config``) and the same-site step that sets the session cookie;
- ``html``: the plain pages a refusal or a framed launch shows;
- ``ags``: scores for the platform's gradebook, and the access token that carries them;
- ``nrps``: the class list, read from the platform;
- ``outbox``: the durable queue of scores and the thread that posts them;
- ``services``: the TA paths scoped to sections, with grade and class-list sync
  (``Workbook.lti``).

Platforms are registered with ``python -m db lti add-platform`` (README, "Moodle (LTI 1.3)").
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "keys": ("SigningKey", "ToolKeys", "tool_keys"),
        "verify": ("KeySets", "LaunchClaims", "LaunchRefused", "verify_id_token"),
        "identity": ("Admission", "admit", "workbook_role"),
        "routes": ("LtiEndpoints", "lti_routes"),
        "ags": ("LtiServiceError", "PlatformRefused", "PlatformUnavailable"),
        "outbox": ("Outbox",),
        "services": ("ClassListRefresh", "GradeNotQueued", "LtiServices", "StaffRoster"),
    },
)
