"""``python -m db``: every command works and is documented."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import db.__main__ as cli
from db import Store

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_is_in_the_parser_and_the_docs():
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(cli.COMMANDS)
    for command in cli.COMMANDS:
        assert f"python -m db {command}" in cli.__doc__


def test_database_path_comes_from_workbook_db():
    assert cli.database_path({}) == Path("data/workbook.db")
    assert cli.database_path({"WORKBOOK_DB": " /srv/wb.db "}) == Path("/srv/wb.db")


def test_init_add_list_archive_backup_export(tmp_path, monkeypatch, capsys):
    path = tmp_path / "cli.db"
    assert cli.main(["--db", str(path), "init"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a long ta password\n"))
    args = ["--db", str(path), "add-user", "--role", "ta", "--email", "TA@example.org"]
    assert cli.main([*args, "--name", "Tina TA"]) == 0
    assert "created ta ta@example.org" in capsys.readouterr().out

    assert cli.main(["--db", str(path), "list-users"]) == 0
    assert "ta@example.org\tTina TA" in capsys.readouterr().out

    assert cli.main(["--db", str(path), "archive-user", "--email", "ta@example.org"]) == 0
    assert "ta@example.org archived" in capsys.readouterr().out
    assert cli.main(["--db", str(path), "list-users"]) == 0
    assert "ta@example.org" not in capsys.readouterr().out
    assert cli.main(["--db", str(path), "list-users", "--all"]) == 0
    assert "archived" in capsys.readouterr().out

    assert cli.main(["--db", str(path), "backup", str(tmp_path / "b.db")]) == 0
    assert cli.main(["--db", str(path), "export-csv", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv" / "users.csv").exists()
    with Store(tmp_path / "b.db") as copy:
        assert copy.user_by_email("ta@example.org").archived  # the backup has the latest state


def test_bad_input_exits_1_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    args = ["--db", str(tmp_path / "x.db"), "add-user", "--email", "a@example.org"]
    assert cli.main([*args, "--name", "A"]) == 1
    assert "password must be at least 8 characters" in capsys.readouterr().err


def test_unknown_role_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit):
        cli.main(
            [
                "--db",
                str(tmp_path / "x.db"),
                "add-user",
                "--role",
                "admin",
                "--email",
                "a@example.org",
                "--name",
                "A",
            ]
        )


def test_module_runs_as_a_program_using_workbook_db(tmp_path):
    env = {**os.environ, "WORKBOOK_DB": str(tmp_path / "env.db")}
    add = subprocess.run(
        [sys.executable, "-m", "db", "add-user", "--email", "s@example.org", "--name", "S"],
        input="student password\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "db", "list-users"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert "s@example.org" in listed.stdout
    assert (tmp_path / "env.db").exists()
