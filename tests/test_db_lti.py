"""LTI storage: platforms, logins, one-use nonces, identities, pending links, memberships,
the tool's key file, and the ``python -m db lti`` commands."""

from __future__ import annotations

import stat
from datetime import timedelta

import jwt
import pytest
from db_fixtures import PASSWORD, make_student

import db.__main__ as cli
from db import ConflictError, NotFoundError, Store, ValidationError

MOODLE = "https://moodle.example.org"
URLS = {
    "auth_url": f"{MOODLE}/mod/lti/auth.php",
    "token_url": f"{MOODLE}/mod/lti/token.php",
    "keyset_url": f"{MOODLE}/mod/lti/certs.php",
}


def add(store: Store, deployment: str = "1", client: str = "abc", issuer: str = MOODLE):
    return store.add_lti_platform(issuer=issuer, client_id=client, deployment_id=deployment, **URLS)


def test_platforms_several_deployments_per_issuer_and_no_duplicates(fresh_db):
    first = add(fresh_db, "1")
    second = add(fresh_db, "2")
    assert fresh_db.lti_platform(MOODLE, "abc", "2") == second
    assert fresh_db.lti_platform(MOODLE + "/") == first  # the earliest, trailing slash ignored
    assert [p.deployment_id for p in fresh_db.lti_platforms()] == ["1", "2"]
    with pytest.raises(ConflictError, match="already registered"):
        add(fresh_db, "1")
    with pytest.raises(NotFoundError):
        fresh_db.lti_platform(MOODLE, "abc", "3")
    fresh_db.remove_lti_platform(first.id)
    assert [p.id for p in fresh_db.lti_platforms()] == [second.id]


@pytest.mark.parametrize("field", ["issuer", "auth_url", "token_url", "keyset_url"])
def test_a_platform_url_must_be_a_full_http_url(fresh_db, field):
    values = {"issuer": MOODLE, "client_id": "abc", "deployment_id": "1", **URLS}
    values[field] = "moodle.example.org/x"
    with pytest.raises(ValidationError) as error:
        fresh_db.add_lti_platform(**values)
    assert error.value.field == field


def test_a_login_is_bound_to_its_browser_and_expires(fresh_db):
    params = {"iss": MOODLE, "login_hint": "7"}
    fresh_db.start_lti_login(
        state="s1",
        browser="b1",
        issuer=MOODLE,
        client_id="abc",
        nonce="n1",
        login_params=params,
        ttl_s=60,
    )
    assert fresh_db.lti_login("s1", "b1").same_browser
    assert fresh_db.lti_login("s1", "b1").login_params == params
    assert not fresh_db.lti_login("s1", "another browser").same_browser
    assert not fresh_db.lti_login("s1", None).same_browser
    with pytest.raises(NotFoundError):
        fresh_db.lti_login("s2", "b1")
    fresh_db.start_lti_login(
        state="old",
        browser="b1",
        issuer=MOODLE,
        client_id="abc",
        nonce="n2",
        login_params=params,
        ttl_s=-1,
    )
    with pytest.raises(NotFoundError):
        fresh_db.lti_login("old", "b1")


def test_a_nonce_is_good_for_one_use_until_it_expires(fresh_db):
    fresh_db.use_lti_nonce("n", MOODLE, ttl_s=60)
    with pytest.raises(ConflictError):
        fresh_db.use_lti_nonce("n", MOODLE, ttl_s=60)
    fresh_db.use_lti_nonce("gone", MOODLE, ttl_s=-1)
    fresh_db.use_lti_nonce("other", MOODLE, ttl_s=60)  # sweeps the expired one
    rows = fresh_db._db().query("SELECT nonce FROM lti_nonces ORDER BY nonce")
    assert [r["nonce"] for r in rows] == ["n", "other"]


def test_a_launch_user_has_no_password_and_follows_latest_claims(fresh_db):
    user = fresh_db.create_lti_user(
        issuer=MOODLE, sub="42", email="Ana@Example.org", name="Ana", role="student"
    )
    assert fresh_db.lti_user(MOODLE, "42") == user
    assert fresh_db.is_launch_only(user.id)
    from db import AuthenticationError

    with pytest.raises(AuthenticationError):
        fresh_db.authenticate("ana@example.org", "!lti-launch-only")
    taken = make_student(fresh_db)
    updated = fresh_db.update_lti_user(user.id, name="Ana B", email=taken.email, role="ta")
    assert (updated.name, updated.email, updated.role) == ("Ana B", "ana@example.org", "ta")
    updated = fresh_db.update_lti_user(
        user.id, name="Ana B", email="ana.b@example.org", role="student"
    )
    assert (updated.email, updated.role) == ("ana.b@example.org", "ta")  # never lowered
    with pytest.raises(NotFoundError):
        fresh_db.lti_user(MOODLE, "43")


def test_deleting_a_launch_only_account_forgets_its_links_and_memberships(fresh_db):
    user = fresh_db.create_lti_user(
        issuer=MOODLE, sub="42", email="ana@example.org", name="Ana", role="student"
    )
    fresh_db.record_lti_launch(
        user.id,
        issuer=MOODLE,
        deployment_id="1",
        context_id="c1",
        title="",
        label="",
        role="student",
    )
    fresh_db.delete_user(user.id)
    with pytest.raises(NotFoundError):
        fresh_db.lti_user(MOODLE, "42")
    assert fresh_db.lti_memberships(user.id) == []


def test_a_pending_link_becomes_an_identity_only_when_confirmed(fresh_db):
    owner = make_student(fresh_db)
    fresh_db.request_lti_link(MOODLE, "7", owner.id)
    with pytest.raises(NotFoundError):
        fresh_db.lti_user(MOODLE, "7")
    assert fresh_db.confirm_lti_links(owner.id) == 1
    assert fresh_db.lti_user(MOODLE, "7").id == owner.id
    assert fresh_db.confirm_lti_links(owner.id) == 0
    assert not fresh_db.is_launch_only(owner.id)
    fresh_db.request_lti_link(MOODLE, "8", owner.id)
    assert fresh_db.confirm_lti_links(owner.id, max_age_s=-1) == 0  # too old


def test_each_launch_upserts_its_context_and_the_latest_service_urls(fresh_db):
    user = make_student(fresh_db)
    first = fresh_db.record_lti_launch(
        user.id,
        issuer=MOODLE,
        deployment_id="1",
        context_id="c1",
        title="NLP",
        label="N1",
        role="student",
        ags_lineitem=f"{MOODLE}/li/1?type_id=2",
        ags_scopes=["a", "b"],
        nrps_url=f"{MOODLE}/nrps",
    )
    again = fresh_db.record_lti_launch(
        user.id,
        issuer=MOODLE,
        deployment_id="1",
        context_id="c1",
        title="NLP 2026",
        label="N1",
        role="student",
        ags_lineitem=f"{MOODLE}/li/9",
        ags_scopes=["a"],
    )
    assert again.id == first.id and fresh_db.lti_context(first.id).title == "NLP 2026"
    other = fresh_db.record_lti_launch(
        user.id,
        issuer=MOODLE,
        deployment_id="1",
        context_id="c2",
        title="",
        label="",
        role="ta",
    )
    memberships = {m.context_pk: m for m in fresh_db.lti_memberships(user.id)}
    assert memberships[first.id].ags_lineitem == f"{MOODLE}/li/9"
    assert memberships[first.id].ags_scopes == ("a",)
    assert memberships[first.id].nrps_url is None
    assert memberships[other.id].role == "ta"


def test_the_tool_key_file_is_private_and_rotation_keeps_the_old_key(store):
    keys = store.lti_tool_keys()
    first = keys.current()
    assert keys.current() == first  # made once
    assert stat.S_IMODE(store.lti_key_path.stat().st_mode) == 0o600
    assert store.lti_key_path.parent == store.path.parent
    token = jwt.encode({"x": 1}, first.private_pem, algorithm="RS256")
    public = jwt.PyJWK(keys.jwks()["keys"][0]).key
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"x": 1}

    second = keys.rotate(timedelta(hours=1))
    assert [k["kid"] for k in keys.jwks()["keys"]] == [first.kid, second.kid]
    with Store(store.path) as reopened:
        assert reopened.lti_tool_keys().current().kid == second.kid  # read from the file
    third = keys.rotate(timedelta(0))
    # The second key expired at once; the first keeps its hour.
    assert [k["kid"] for k in keys.jwks()["keys"]] == [first.kid, third.kid]
    assert "PRIVATE" not in str(keys.jwks())
    backup = store.export_csv(store.path.parent / "csv")
    assert all("PRIVATE KEY" not in path.read_text() for path in backup)


def test_cli_lti_commands(tmp_path, capsys):
    path = str(tmp_path / "cli.db")
    args = ["--db", path, "lti", "add-platform", "--issuer", MOODLE, "--client-id", "abc"]
    urls = [
        f"--{k.replace('_', '-')}" if i % 2 == 0 else v
        for kv in URLS.items()
        for i, (k, v) in enumerate([kv, kv])
    ]
    full = [*args, "--deployment-id", "1", *urls, "--name", "Moodle"]
    assert cli.main(full) == 0
    assert "registered platform 1: Moodle" in capsys.readouterr().out
    assert cli.main(full) == 1
    assert "already registered" in capsys.readouterr().err
    bad = [*args, "--deployment-id", "2", *urls[:-1], "not a url"]
    assert cli.main(bad) == 1
    assert "keyset_url" in capsys.readouterr().err
    assert cli.main(["--db", path, "lti", "list-platforms"]) == 0
    assert f"1\tMoodle\t{MOODLE}\tclient abc\tdeployment 1" in capsys.readouterr().out
    assert cli.main(["--db", path, "lti", "rotate-key", "--keep-old-hours", "2"]) == 0
    assert cli.main(["--db", path, "lti", "show-keys"]) == 0
    shown = capsys.readouterr().out
    assert "current" in shown and "until" in shown
    assert cli.main(["--db", path, "lti", "remove-platform", "1"]) == 0
    assert cli.main(["--db", path, "lti", "remove-platform", "1"]) == 1
    assert "no LTI platform" in capsys.readouterr().err
    assert PASSWORD  # the shared fixtures module is importable here too
