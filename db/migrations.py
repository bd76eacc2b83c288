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


@migrations(name="m005_lti")
def m005_lti(db: Database) -> None:
    """LTI 1.3: registered platforms, launches and the identities and courses they bring.

    ``lti_platforms`` holds one row per (issuer, client id, deployment): a Moodle site may
    deploy the tool several times. ``lti_states`` remembers each OIDC login this tool started
    (only a hash of the state and of the browser's binding cookie). ``lti_nonces`` makes
    every launch's nonce good for one use. ``lti_identities`` maps a platform's user
    (issuer, ``sub``) to an account, ``lti_pending_links`` an (issuer, ``sub``) whose email
    matches a password account that has not yet confirmed the link by signing in.
    ``lti_contexts``/``lti_memberships`` record the courses launched from and, per user and
    course, the service URLs of the latest launch.
    """
    db.execute(
        """
        CREATE TABLE lti_platforms (
            id INTEGER PRIMARY KEY,
            issuer TEXT NOT NULL,
            client_id TEXT NOT NULL,
            deployment_id TEXT NOT NULL,
            name TEXT NOT NULL,
            auth_url TEXT NOT NULL,
            token_url TEXT NOT NULL,
            keyset_url TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (issuer, client_id, deployment_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE lti_states (
            state_hash TEXT PRIMARY KEY,
            browser_hash TEXT NOT NULL,
            issuer TEXT NOT NULL,
            client_id TEXT NOT NULL,
            nonce TEXT NOT NULL,
            login_params TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_lti_states_expires ON lti_states (expires_at)")
    db.execute(
        """
        CREATE TABLE lti_nonces (
            nonce TEXT PRIMARY KEY,
            issuer TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_lti_nonces_expires ON lti_nonces (expires_at)")
    db.execute(
        """
        CREATE TABLE lti_identities (
            issuer TEXT NOT NULL,
            sub TEXT NOT NULL,
            user_id INTEGER NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (issuer, sub)
        )
        """
    )
    db.execute("CREATE INDEX idx_lti_identities_user ON lti_identities (user_id)")
    db.execute(
        """
        CREATE TABLE lti_pending_links (
            issuer TEXT NOT NULL,
            sub TEXT NOT NULL,
            user_id INTEGER NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (issuer, sub)
        )
        """
    )
    db.execute("CREATE INDEX idx_lti_pending_links_user ON lti_pending_links (user_id)")
    db.execute(
        """
        CREATE TABLE lti_contexts (
            id INTEGER PRIMARY KEY,
            issuer TEXT NOT NULL,
            deployment_id TEXT NOT NULL,
            context_id TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            label TEXT NOT NULL DEFAULT '',
            UNIQUE (issuer, deployment_id, context_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE lti_memberships (
            user_id INTEGER NOT NULL REFERENCES users(id),
            context_pk INTEGER NOT NULL REFERENCES lti_contexts(id),
            role TEXT NOT NULL CHECK (role IN ('student', 'ta')),
            ags_lineitem TEXT,
            ags_lineitems TEXT,
            ags_scopes TEXT,
            nrps_url TEXT,
            last_launch_at TEXT NOT NULL,
            PRIMARY KEY (user_id, context_pk)
        )
        """
    )
    db.execute("CREATE INDEX idx_lti_memberships_context ON lti_memberships (context_pk)")


@migrations(name="m006_lti_services")
def m006_lti_services(db: Database) -> None:
    """The score outbox (grades waiting for, or sent to, a platform) and the class list.

    ``lti_scores`` is the durable queue of AGS scores: a row is written in the same
    transaction that decides its timestamp, and is only ever marked, never deleted, so a
    grade survives restarts and failed posts. ``lti_roster`` caches the platform's class
    list (NRPS) per context, replaced whole on each refresh.
    """
    db.execute(
        """
        CREATE TABLE lti_scores (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            context_pk INTEGER NOT NULL,
            lineitem TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('grade', 'submitted')),
            payload TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'error', 'superseded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX lti_scores_due ON lti_scores (state, next_try_at)")
    db.execute("CREATE INDEX lti_scores_user_lineitem ON lti_scores (user_id, lineitem)")
    db.execute(
        """
        CREATE TABLE lti_roster (
            context_pk INTEGER NOT NULL,
            sub TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            roles TEXT NOT NULL,
            fetched_at TEXT NOT NULL,
            PRIMARY KEY (context_pk, sub)
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
