"""``python -m db``: set up and look after the workbook database from a shell.

Commands::

    python -m db init                                   create/upgrade the database
    python -m db add-user --role ta --email E --name N  password asked (or read from stdin)
    python -m db list-users [--role ROLE] [--all]
    python -m db archive-user --email E [--restore]
    python -m db backup PATH                            online backup, safe while the app runs
    python -m db export-csv DIR                         every table as CSV
    python -m db lti add-platform --issuer URL --client-id ID --deployment-id ID \
        --auth-url URL --token-url URL --keyset-url URL [--name TEXT]
    python -m db lti list-platforms                     registered LTI 1.3 platforms
    python -m db lti remove-platform ID                 forget one registration
    python -m db lti rotate-key [--keep-old-hours N]    new tool key; the old one stays
                                                        published N hours (default 24)
    python -m db lti show-keys                          the tool's published key ids

The database is ``--db PATH``, else ``WORKBOOK_DB``, else ``data/workbook.db``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from db.errors import DbError
from db.models import ROLES
from db.store import Store

DEFAULT_DB = Path("data/workbook.db")
COMMANDS = ("init", "add-user", "list-users", "archive-user", "backup", "export-csv", "lti")
LTI_COMMANDS = ("add-platform", "list-platforms", "remove-platform", "rotate-key", "show-keys")


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
    _lti_parser(sub.add_parser("lti", help="LTI 1.3: platforms (Moodle) and the tool's keys"))
    return parser


def _lti_parser(lti: argparse.ArgumentParser) -> None:
    sub = lti.add_subparsers(dest="lti_command", required=True, metavar="LTI_COMMAND")
    add = sub.add_parser("add-platform", help="register one deployment of the tool")
    add.add_argument("--issuer", required=True, help="the platform's URL (Moodle: Platform ID)")
    add.add_argument("--client-id", required=True, help="Moodle: Client ID")
    add.add_argument("--deployment-id", required=True, help="Moodle: Deployment ID")
    add.add_argument("--auth-url", required=True, help="Moodle: Authentication request URL")
    add.add_argument("--token-url", required=True, help="Moodle: Access token URL")
    add.add_argument("--keyset-url", required=True, help="Moodle: Public keyset URL")
    add.add_argument("--name", default="", help="a label for lists (default: the host)")
    sub.add_parser("list-platforms", help="list registered platforms")
    remove = sub.add_parser("remove-platform", help="forget a registration")
    remove.add_argument("id", type=int, help="the id `list-platforms` shows")
    rotate = sub.add_parser("rotate-key", help="make a new tool signing key")
    rotate.add_argument(
        "--keep-old-hours",
        type=float,
        default=24.0,
        help="how long the previous key stays in the key set (default 24)",
    )
    sub.add_parser("show-keys", help="the tool's published key ids")


def _lti(store: Store, args: argparse.Namespace) -> None:
    if args.lti_command == "add-platform":
        platform = store.add_lti_platform(
            issuer=args.issuer,
            client_id=args.client_id,
            deployment_id=args.deployment_id,
            auth_url=args.auth_url,
            token_url=args.token_url,
            keyset_url=args.keyset_url,
            name=args.name,
        )
        print(
            f"registered platform {platform.id}: {platform.name} ({platform.issuer},"
            f" client {platform.client_id}, deployment {platform.deployment_id})"
        )
    elif args.lti_command == "list-platforms":
        platforms = store.lti_platforms()
        if not platforms:
            print("no LTI platform registered (add one with `python -m db lti add-platform`)")
        for p in platforms:
            print(
                f"{p.id}\t{p.name}\t{p.issuer}\tclient {p.client_id}\tdeployment {p.deployment_id}"
            )
    elif args.lti_command == "remove-platform":
        platform = store.remove_lti_platform(args.id)
        print(f"removed platform {platform.id}: {platform.name} ({platform.issuer})")
    elif args.lti_command == "rotate-key":
        if args.keep_old_hours < 0:
            raise DbError("--keep-old-hours must be 0 or more")
        key = store.lti_tool_keys().rotate(timedelta(hours=args.keep_old_hours))
        print(
            f"new signing key {key.kid}; the previous one stays published"
            f" {args.keep_old_hours:g} hours"
        )
    elif args.lti_command == "show-keys":
        for key in store.lti_tool_keys().published():
            until = (
                "current"
                if key.expires_at is None
                else f"until {key.expires_at:%Y-%m-%d %H:%M} UTC"
            )
            print(f"{key.kid}\t{until}")


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
            elif args.command == "lti":
                _lti(store, args)
    except DbError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
