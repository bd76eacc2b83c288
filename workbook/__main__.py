"""``python -m workbook``: the workbook's command line (for instructors and tests).

Commands::

    python -m workbook export --email E --out DIR [--files] [--no-record]
        build the student's Moodle bundle (the same zip the Submit page offers) into DIR
    python -m workbook checklist --email E
        print the pre-submission checklist of a student

The database is ``--db PATH``, else ``WORKBOOK_DB``; the model name is ``--model``, else
``WORKBOOK_MODEL`` (see ``workbook.config``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from workbook.config import Settings, SettingsError
from workbook.errors import WorkbookError


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
    return parser


def _export(store, user, settings: Settings, args: argparse.Namespace) -> int:
    import zipfile

    from workbook.submission.bundle import BUNDLE_FILES, build_bundle
    from workbook.submission.snapshot import gather_submission

    submission = gather_submission(store, user.id, model_name=settings.model_name)
    bundle = build_bundle(submission)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / bundle.file_name
    target.write_bytes(bundle.data)
    if args.files:
        with zipfile.ZipFile(target) as archive:
            for name in BUNDLE_FILES:
                (args.out / name).write_bytes(archive.read(name))
    if not args.no_record:
        store.record_export(user.id, bundle.file_name, bundle.notebook_sha256)
    print(target)
    print(f"sha256 {bundle.sha256}")
    print(f"notebook sha256 {bundle.notebook_sha256}")
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
    from db import DbError, NotFoundError, Store
    from workbook.exercise import content

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
    try:
        with Store(
            settings.db_path,
            question_ids=content.question_ids(),
            step_ids=content.step_ids(),
        ) as store:
            try:
                user = store.user_by_email(args.email)
            except NotFoundError:
                print(f"error: no account with email {args.email!r}", file=sys.stderr)
                return 1
            if args.command == "export":
                return _export(store, user, settings, args)
            return _checklist(store, user, settings)
    except (DbError, WorkbookError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
