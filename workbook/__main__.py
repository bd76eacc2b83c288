"""``python -m workbook``: the workbook's command line (for instructors and tests).

Commands::

    python -m workbook export --email E --out DIR [--files] [--no-record]
        build the student's Moodle bundle (the same zip the Submit page offers) into DIR;
        recorded as the Submit page records it, "handed in" queued for Moodle (LTI)
    python -m workbook checklist --email E
        print the pre-submission checklist of a student
    python -m workbook class-report --as STAFF_EMAIL [--json] [--since MINUTES]
        the Class page's figures (funnel, causes, next-run pass share, stuck students,
        clusters) for the students that staff account may see; refused for a student

The database is ``--db PATH``, else ``WORKBOOK_DB``; the model name is ``--model``, else
``WORKBOOK_MODEL`` (see ``workbook.config``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from workbook.config import Settings, SettingsError
from workbook.errors import WorkbookError

if TYPE_CHECKING:
    from workbook.service import Workbook


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbook",
        description="Build a student's Moodle bundle or checklist from the workbook database.",
    )
    parser.add_argument("--db", type=Path, help="database file (default: $WORKBOOK_DB)")
    parser.add_argument("--model", help="the course's model (default: $WORKBOOK_MODEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", help="build a student's Moodle bundle")
    export.add_argument("--email", required=True, help="the student's email")
    export.add_argument("--out", type=Path, required=True, help="folder to write the zip into")
    export.add_argument(
        "--files",
        action="store_true",
        help="also write the notebook and the texts next to the zip, unzipped",
    )
    export.add_argument(
        "--no-record",
        action="store_true",
        help="do not record this export in the database (e.g. a TA looking at the work)",
    )
    checklist = sub.add_parser("checklist", help="print a student's pre-submission checklist")
    checklist.add_argument("--email", required=True, help="the student's email")
    report = sub.add_parser("class-report", help="the Class page's figures (staff only)")
    report.add_argument(
        "--as", dest="email", required=True, help="the TA's or instructor's email (their scope)"
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    report.add_argument(
        "--since", type=float, default=15.0, metavar="MINUTES", help="the recent window (15)"
    )
    report.add_argument("--stuck-runs", type=int, default=3, help="K failing runs in a row (3)")
    report.add_argument(
        "--stuck-minutes", type=float, default=20.0, help="N minutes without a pass (20)"
    )
    report.add_argument(
        "--projection", action="store_true", help="pseudonyms, no code, counts under 5 hidden"
    )
    return parser


def _class_report(store, user, args: argparse.Namespace) -> int:
    from workbook.classview import ClassViewOptions, class_view, report_json, report_text

    options = ClassViewOptions(
        recent_minutes=args.since,
        stuck_runs=args.stuck_runs,
        stuck_minutes=args.stuck_minutes,
        projection=args.projection,
    )
    view = class_view(store, user, options)  # refuses a student (ClassViewRefused)
    print(report_json(view) if args.json else report_text(view), end="")
    return 0


def _export(wb: Workbook, user, args: argparse.Namespace) -> int:
    import zipfile

    from workbook.lti.services import LtiServices
    from workbook.submission import export_for
    from workbook.submission.bundle import BUNDLE_FILES

    store = wb.store
    bundle = export_for(store, user.id, model_name=wb.settings.model_name)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / bundle.file_name
    target.write_bytes(bundle.data)
    if args.files:
        with zipfile.ZipFile(target) as archive:
            for name in BUNDLE_FILES:
                (args.out / name).write_bytes(archive.read(name))
    queued = 0
    if not args.no_record:
        # The Submit page's path: the export is recorded and Moodle is told the homework is
        # handed in. The score is only queued here; the app's outbox thread posts it (this
        # process may end before a post would be done, and a post cut off might be sent twice).
        before = len(store.lti_scores_for(user.id))
        LtiServices(wb, autostart=False).record_export(
            user.id, bundle.file_name, bundle.notebook_sha256
        )
        queued = len(store.lti_scores_for(user.id)) - before
    print(target)
    print(f"sha256 {bundle.sha256}")
    print(f"notebook sha256 {bundle.notebook_sha256}")
    if queued:
        print(f"Moodle: hand-in queued for {queued} course(s); the running app sends it")
    return 0


def _checklist(store, user, settings: Settings) -> int:
    from workbook.submission import checklist

    result = checklist.checklist_for(store, user.id, model_name=settings.model_name)
    if not result.items:
        print("Everything looks ready to submit.")
    for item in result.items:
        print(f"[{item.severity}] {item.message}  ({item.page})")
    return 0 if result.can_export else 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 refused, 2 export blocked)."""
    args = _parser().parse_args(argv)
    from db import DbError, NotFoundError
    from workbook.service import Workbook

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.db is not None:
        settings = replace(settings, db_path=args.db)
    if args.model:
        settings = replace(settings, model_name=args.model)
    if not settings.db_path.exists():
        print(
            f"error: no database at {settings.db_path} (set WORKBOOK_DB or --db)", file=sys.stderr
        )
        return 1
    # The app's facade (the same store, the same export path as the pages); it starts
    # nothing in the background here.
    wb = Workbook(settings)
    try:
        with wb.store as store:
            try:
                user = store.user_by_email(args.email)
            except NotFoundError:
                print(f"error: no account with email {args.email!r}", file=sys.stderr)
                return 1
            if args.command == "export":
                return _export(wb, user, args)
            if args.command == "class-report":
                return _class_report(store, user, args)
            return _checklist(store, user, settings)
    except (DbError, WorkbookError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
