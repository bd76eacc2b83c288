"""lti: the workbook as an LTI 1.3 tool (Moodle launches it, grades and class list go back).

- ``ags``: scores for the platform's gradebook and the access token that carries them;
- ``nrps``: the class list, read from the platform;
- ``outbox``: the durable queue of scores and the thread that posts them;
- ``services``: the TA paths scoped to sections, with grade and class-list sync
  (``Workbook.lti``).
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "ags": (
            "LtiServiceError",
            "PlatformRefused",
            "PlatformUnavailable",
            "SigningKey",
        ),
        "outbox": ("Outbox",),
        "services": (
            "ClassListRefresh",
            "LtiServices",
            "StaffRoster",
        ),
    },
)
