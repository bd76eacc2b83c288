"""classview: the whole class at a glance for TAs and instructors, live during a lab.

- ``figures``: ``class_view`` (the staff's entry point; refuses a student) and the
  ``ClassView`` it returns: every figure of the Class page, for the students the viewer may
  see (``Store.visible_student_ids``), computed by the store's SQL aggregates;
- ``progress``: the progress funnel per step, and Q1-Q3 and the reflections (started, long
  enough, final) by the Submit checklist's own rules;
- ``misconceptions``: the causes the checks named per step (recent and all time), the
  share without a specific cause, and whether the run after each cause passed;
- ``timing``: attempts to pass, and time to pass as a survival curve (Kaplan-Meier: a
  student who has not passed yet counts as still running, not as missing);
- ``stuck``: who is stuck now, on what, for how long, with the diff of their last two codes;
- ``clusters``: students' latest code grouped by its normalised syntax tree;
- ``privacy``: projection mode (pseudonyms, no code, counts under 5 hidden);
- ``charts``: the page's Altair charts, each with its numbers in words and as a table;
- ``report``: the figures as text or JSON for ``python -m workbook class-report``.
"""

from workbook.public_names import public_face

# Each public name and the module it lives in; a module is imported when one of its
# names is first used (see workbook/public_names.py).
__all__, __getattr__, __dir__ = public_face(
    __name__,
    {
        "charts": ("Chart", "page_charts", "stuck_table"),
        "clusters": ("normalised_code",),
        "figures": (
            "ClassView",
            "ClassViewRefused",
            "ClassViewOptions",
            "class_view",
        ),
        "privacy": ("HIDDEN_BELOW", "pseudonym"),
        "report": ("report_json", "report_text"),
        "timing": ("kaplan_meier",),
    },
)
