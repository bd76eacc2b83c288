"""``python -m db``: set up and look after the workbook database from a shell.

Commands::

    python -m db init                                   create/upgrade the database
    python -m db add-user --role ta --email E --name N  password asked (or read from stdin)
    python -m db list-users [--role ROLE] [--all]
    python -m db archive-user --email E [--restore]
    python -m db backup PATH                            online backup, safe while the app runs
    python -m db export-csv DIR                         every table as CSV

The database is ``--db PATH``, else ``WORKBOOK_DB``, else ``data/workbook.db``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from db.errors import DbError
from db.models import ROLES
from db.store import Store

DEFAULT_DB = Path("data/workbook.db")
COMMANDS = ("init", "add-user", "list-users", "archive-user", "backup", "export-csv")


def database_path(env: Mapping[str, str] | None = None) -> Path:
    """``WORKBOOK_DB`` from ``env`` (default ``os.environ``), else ``data/workbook.db``."""
    env = os.environ if env is None else env
    return Path(env.get("WORKBOOK_DB", "").strip() or DEFAULT_DB)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="database file (default: $WORKBOOK_DB)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("init", help="create the database or apply pending migrations")
    add = sub.add_parser("add-user", help="create an account")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=ROLES, default="student")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (also the default when stdin "
        "is not a terminal)",
    )
    users = sub.add_parser("list-users", help="list accounts")
    users.add_argument("--role", choices=ROLES)
    users.add_argument("--all", action="store_true", help="include archived accounts")
    archive = sub.add_parser("archive-user", help="hide an account (its work is kept)")
    archive.add_argument("--email", required=True)
    archive.add_argument("--restore", action="store_true", help="un-archive instead")
    backup = sub.add_parser("backup", help="online backup to PATH")
    backup.add_argument("path", type=Path)
    export = sub.add_parser("export-csv", help="write every table as CSV into DIR")
    export.add_argument("directory", type=Path)
    return parser


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise DbError("the passwords do not match")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status (0 ok, 1 refused)."""
    args = _parser().parse_args(argv)
    path = args.db or database_path()
    try:
        with Store(path) as store:
            if args.command == "init":
                print(f"database ready: {path}")
            elif args.command == "add-user":
                password = _read_password(args.password_stdin)
                user = store.create_user(args.email, args.name, password, role=args.role)
                print(f"created {user.role} {user.email} (id {user.id})")
            elif args.command == "list-users":
                for user in store.list_users(role=args.role, include_archived=args.all):
                    flag = "\tarchived" if user.archived else ""
                    print(f"{user.id}\t{user.role}\t{user.email}\t{user.name}{flag}")
            elif args.command == "archive-user":
                user = store.user_by_email(args.email)
                user = store.archive_user(user.id, archived=not args.restore)
                print(f"{user.email} {'archived' if user.archived else 'restored'}")
            elif args.command == "backup":
                print(f"backup written: {store.backup(args.path)}")
            elif args.command == "export-csv":
                files = store.export_csv(args.directory)
                print(f"{len(files)} tables written to {args.directory}")
    except DbError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
