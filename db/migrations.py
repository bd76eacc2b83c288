"""Every schema change, as numbered ``sqlite_utils.Migrations`` applied when a store opens.

Never edit a migration that has shipped: add a new one. Student-work tables are
append-only (one row per revision); the current value is the row with the largest id.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATION_SET = "workbook"

migrations = Migrations(MIGRATION_SET)


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    """Users and every kind of student work, each as an append-only revision table."""
    db.execute(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('student', 'ta', 'instructor')),
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen_at TEXT,
            archived INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute(
        """
        CREATE TABLE answer_revisions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            question_id TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE tutorial_path_revisions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            path TEXT NOT NULL CHECK (path IN ('tutorials', 'project')),
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE tutorial_revisions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            slot TEXT NOT NULL,
            category TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            from_catalog INTEGER NOT NULL,
            dates TEXT NOT NULL,          -- JSON list of ISO dates
            minutes INTEGER,
            notes TEXT NOT NULL,
            reflection TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE cell_revisions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            step_id TEXT NOT NULL,
            code TEXT NOT NULL,
            outputs TEXT NOT NULL,        -- JSON list of nbformat output dicts
            execution_count INTEGER,
            passed INTEGER,               -- NULL: not checked (code-only autosave)
            message TEXT,
            ran_at TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            student_id INTEGER NOT NULL REFERENCES users(id),
            grader_id INTEGER NOT NULL REFERENCES users(id),
            grade REAL,
            comment TEXT NOT NULL,
            item_comments TEXT NOT NULL,  -- JSON object item -> comment
            released INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE exports (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            file_name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,          -- JSON
            updated_at TEXT NOT NULL
        )
        """
    )
    for table, columns in (
        ("answer_revisions", "user_id, question_id, id"),
        ("tutorial_path_revisions", "user_id, id"),
        ("tutorial_revisions", "user_id, slot, id"),
        ("cell_revisions", "user_id, step_id, id"),
        ("feedback", "student_id, id"),
        ("exports", "user_id, id"),
    ):
        # Fixed identifiers from this file, never user input.
        db.execute(f"CREATE INDEX idx_{table}_latest ON {table} ({columns})")


@migrations(name="m002_project_logins_snippets")
def m002_project_logins_snippets(db: Database) -> None:
    """The mini-project path (with deduplicated uploads), login attempts, comment snippets."""
    db.execute(
        """
        CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            content BLOB NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE project_revisions (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            description TEXT NOT NULL,
            link TEXT NOT NULL,
            notebook_name TEXT,
            upload_id INTEGER REFERENCES uploads(id),
            reflection TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_project_revisions_latest ON project_revisions (user_id, id)")
    db.execute(
        """
        CREATE TABLE login_attempts (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL COLLATE NOCASE,
            succeeded INTEGER NOT NULL,
            at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_login_attempts_email_at ON login_attempts (email, at)")
    db.execute(
        """
        CREATE TABLE snippets (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            author_id INTEGER NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL
        )
        """
    )


@migrations(name="m003_sign_in_sessions")
def m003_sign_in_sessions(db: Database) -> None:
    """Remembered sign-ins, so a page reload keeps a student signed in.

    Only a hash of each token is stored: a copy of the database cannot sign anyone in.
    """
    db.execute(
        """
        CREATE TABLE sign_in_sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX sign_in_sessions_user ON sign_in_sessions (user_id)")


@migrations(name="m004_sign_in_throttle")
def m004_sign_in_throttle(db: Database) -> None:
    """Sign-in attempts reserved before the password check, and trusted browsers.

    ``sign_in_attempts`` replaces ``login_attempts``: a row is written as ``pending`` in the
    same transaction that decides the attempt may go ahead, so parallel attempts see each
    other. ``client`` is the key the throttle counts per (an address, or a trusted browser);
    ``trusted`` marks attempts from a browser that signed in to this account before, which the
    account-wide slow-down does not hold back. Only a hash of a browser's token is stored.
    """
    db.execute("DROP TABLE login_attempts")
    db.execute(
        """
        CREATE TABLE sign_in_attempts (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL COLLATE NOCASE,
            client TEXT NOT NULL,
            trusted INTEGER NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('pending', 'failed', 'succeeded')),
            at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_sign_in_attempts_email_at ON sign_in_attempts (email, at)")
    db.execute(
        """
        CREATE TABLE trusted_browsers (
            user_id INTEGER NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL,
            last_success_at TEXT NOT NULL,
            PRIMARY KEY (user_id, token_hash)
        )
        """
    )


@migrations(name="m007_check_causes")
def m007_check_causes(db: Database) -> None:
    """A checked run's structured cause id beside its message, and indexes for the class view.

    ``cause`` names what the check's message names (``softmax_too_early``, ``stale_phrase``
    ...; NULL when passed, not checked, or stored before this migration: "unclassified").
    The indexes let the Class page read each step's runs per student in id order, and
    recent runs, without scanning the table.
    """
    db.execute("ALTER TABLE cell_revisions ADD COLUMN cause TEXT")
    db.execute(
        "CREATE INDEX idx_cell_revisions_step_runs"
        " ON cell_revisions (step_id, user_id, id, passed, cause, ran_at)"
        " WHERE ran_at IS NOT NULL"
    )
    db.execute("CREATE INDEX idx_cell_revisions_ran_at ON cell_revisions (ran_at)")
    db.execute("CREATE INDEX idx_exports_user ON exports (user_id)")
