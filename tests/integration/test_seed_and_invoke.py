"""``dramac seed`` (idempotent, creates what is missing, ``--reset``, documented credentials only on
this machine's databases) and what ``dramac invoke`` does around a sample (seeds once, re-signs
Paddle samples marked for it, refuses directives it does not know)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
COUNTED = ("public.agencies", "public.sites", "public.agency_module_subscriptions",
           "public.site_module_installations", "public.site_api_keys", "public.module_data",
           "public.automation_workflows", "public.workflow_steps", "public.automation_event_subscriptions",
           "public.automation_webhooks", "public.module_database_registry", "mod_3f2a9c1e.contacts")


@pytest.fixture(scope="module")
def migrated_template(server_url: str) -> Iterator[str]:
    from dramac_common.core.migrate import apply_migrations

    from dramac_dev import localdb

    name, url = localdb.create_database(server_url, prefix="dramac_seedtpl")
    try:
        apply_migrations(url)
        yield name
    finally:
        localdb.drop_database(server_url, name)


@pytest.fixture
def blank_database(server_url: str, migrated_template: str) -> Iterator[str]:
    """A migrated database nobody has seeded; the layer's pool and the environment restored after."""
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    from dramac_dev import localdb

    name = f"dramac_seed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(migrated_template)))
    saved = dict(os.environ)
    db.close_pool()
    try:
        yield localdb.with_dbname(server_url, name)
    finally:
        db.close_pool()
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        localdb.drop_database(server_url, name)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*t.split(".")))).fetchone()[0]
                for t in COUNTED}


def scalar(url: str, query: str, *params) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def test_seed_is_idempotent_and_ready_for_the_samples(blank_database: str) -> None:
    from dramac_dev import seed

    assert seed.unseeded(blank_database)
    first = seed.seed_demo(blank_database)
    after_first = counts(blank_database)
    assert seed.seed_demo(blank_database) == first
    assert counts(blank_database) == after_first
    assert not seed.unseeded(blank_database)
    assert first["api_key"] == seed.DEMO_API_KEY and first["contact"] == str(seed.DEMO_CONTACT_ID)
    statuses = dict(psycopg.connect(blank_database).execute(
        "SELECT module_id, status FROM site_module_installations WHERE site_id = %s", (seed.DEMO_SITE_ID,)).fetchall())
    assert statuses == {seed.DEMO_FREE_MODULE_ID: "active", seed.DEMO_WIDGET_MODULE_ID: "active"}
    assert scalar(blank_database, "SELECT status FROM agency_module_subscriptions WHERE id = %s",
                  seed.DEMO_PENDING_SUBSCRIPTION_ID) == "pending"


def test_the_documented_api_key_works_on_the_seeded_site(blank_database: str) -> None:
    from dramac_common.core import auth
    from dramac_common.core.settings import reset_settings

    from dramac_dev import seed

    seed.seed_demo(blank_database)
    os.environ["DATABASE_URL"] = blank_database
    reset_settings()
    key = auth.verify_api_key(seed.DEMO_API_KEY)
    assert (key.key_id, key.site_id) == (seed.DEMO_API_KEY_ID, seed.DEMO_SITE_ID)


def test_seed_puts_back_what_is_missing_and_keeps_what_was_changed(blank_database: str) -> None:
    from dramac_dev import seed

    seed.seed_demo(blank_database)
    with psycopg.connect(blank_database, autocommit=True) as conn:
        conn.execute("DELETE FROM mod_3f2a9c1e.contacts WHERE id = %s", (seed.DEMO_CONTACT_ID,))
        conn.execute("UPDATE site_module_installations SET status = 'disabled', is_enabled = false "
                     "WHERE site_id = %s AND module_id = %s", (seed.DEMO_SITE_ID, seed.DEMO_WIDGET_MODULE_ID))
    seed.seed_demo(blank_database)
    assert scalar(blank_database, "SELECT count(*) FROM mod_3f2a9c1e.contacts WHERE id = %s", seed.DEMO_CONTACT_ID) == 1
    assert scalar(blank_database, "SELECT status FROM site_module_installations WHERE module_id = %s",
                  seed.DEMO_WIDGET_MODULE_ID) == "disabled"


def test_seed_reset_returns_the_demo_agency_to_its_seeded_state(blank_database: str) -> None:
    from dramac_dev import seed

    seed.seed_demo(blank_database)
    seeded = counts(blank_database)
    with psycopg.connect(blank_database, autocommit=True) as conn:
        conn.execute("UPDATE site_module_installations SET status = 'disabled' WHERE site_id = %s", (seed.DEMO_SITE_ID,))
        conn.execute("UPDATE site_api_keys SET revoked_at = now() WHERE site_id = %s", (seed.DEMO_SITE_ID,))
        conn.execute("INSERT INTO mod_3f2a9c1e.contacts (site_id, email) VALUES (%s, 'extra@example.com')",
                     (seed.DEMO_SITE_ID,))
        conn.execute("INSERT INTO payment_events (event_id, event_type, occurred_at, subscription_id, payload) "
                     "VALUES ('evt_sample_0001', 'transaction.completed', now(), %s, '{}')",
                     (seed.DEMO_PENDING_SUBSCRIPTION_ID,))
    seed.reset_demo(blank_database)
    assert seed.unseeded(blank_database)
    seed.seed_demo(blank_database)
    assert counts(blank_database) == seeded
    assert scalar(blank_database, "SELECT count(*) FROM site_api_keys WHERE revoked_at IS NOT NULL") == 0
    assert scalar(blank_database, "SELECT count(*) FROM payment_events") == 0


@pytest.mark.parametrize(("conninfo", "local"), [
    ("postgresql://postgres@/dramac?host=/work/p/.dramac/pgdata", True),
    ("postgresql://postgres@localhost/dramac", True),
    ("postgresql://postgres@127.0.0.1:5432/dramac", True),
    ("postgresql://postgres@[::1]:5432/dramac", True),
    ("dbname=dramac", True),
    ("postgresql://app@db.cluster-abc.eu-west-1.rds.amazonaws.com/postgres", False),
    ("postgresql://app@10.0.3.7/postgres", False),
    ("host=127.0.0.1,db.example.test dbname=x", False),
    ("host=db.example.test hostaddr=127.0.0.1 dbname=x", False),
])
def test_only_this_machines_databases_count_as_local(conninfo: str, local: bool) -> None:
    from dramac_dev.seed import is_local_database

    assert is_local_database(conninfo) is local


def test_without_documented_credentials_the_seed_writes_no_known_key_or_token(blank_database: str) -> None:
    """What a database that is not on this machine gets (``is_local_database`` above decides)."""
    from dramac_common.automation.workflows import hash_token

    from dramac_dev import seed

    ids = seed.seed_demo(blank_database, documented_credentials=False)
    assert "api_key" not in ids and "webhook_path" not in ids
    assert scalar(blank_database, "SELECT count(*) FROM site_api_keys WHERE id = %s", seed.DEMO_API_KEY_ID) == 0
    assert scalar(blank_database, "SELECT count(*) FROM automation_webhooks WHERE id = %s", seed.DEMO_WEBHOOK_ID) == 1
    assert scalar(blank_database, "SELECT count(*) FROM automation_webhooks WHERE token_hash = %s",
                  hash_token(seed.DEMO_WEBHOOK_TOKEN)) == 0


# -- dramac invoke ---------------------------------------------------------------------------------

def invoke(capsys, *argv: str) -> tuple[int, str, str]:
    from dramac_dev.cli import main

    capsys.readouterr()
    code = main(["invoke", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_invoke_seeds_a_database_once_and_then_keeps_what_samples_changed(blank_database: str, capsys) -> None:
    from dramac_dev import seed

    os.environ["DATABASE_URL"] = blank_database
    code, out, _ = invoke(capsys, "module_api", str(REPO / "events/module_api/delete_contact.json"))
    assert code == 0 and json.loads(out)["statusCode"] == 200
    code, out, _ = invoke(capsys, "module_api", str(REPO / "events/module_api/get_contact.json"))
    assert code == 0 and json.loads(out)["statusCode"] == 404  # not seeded again behind the user's back
    assert not seed.unseeded(blank_database)


def test_invoke_signs_a_marked_paddle_sample_with_the_local_secret_now(blank_database: str, capsys,
                                                                      tmp_path: Path) -> None:
    from dramac_dev import seed

    os.environ["DATABASE_URL"] = blank_database
    sample = REPO / "events/purchase/webhook_transaction_completed.json"
    unmarked = tmp_path / "unmarked.json"
    event = json.loads(sample.read_text())
    assert event.pop("dramacInvoke") == {"signPaddleWebhook": True}
    unmarked.write_text(json.dumps(event))
    code, out, _ = invoke(capsys, "purchase", str(unmarked))
    assert json.loads(out)["statusCode"] == 401  # the file's own 2023 signature is outside the tolerance
    code, out, _ = invoke(capsys, "purchase", str(sample))
    data = json.loads(json.loads(out)["body"])["data"]
    assert (code, data["outcome"], data["status"]) == (0, "applied", "active")
    assert scalar(blank_database, "SELECT status FROM agency_module_subscriptions WHERE id = %s",
                  seed.DEMO_PENDING_SUBSCRIPTION_ID) == "active"


def test_invoke_signs_with_the_configured_webhook_secret(blank_database: str, capsys, tmp_path: Path) -> None:
    os.environ["DATABASE_URL"] = blank_database
    os.environ["PADDLE_WEBHOOK_SECRET"] = "pdl_ntfset_configured_here"
    code, out, _ = invoke(capsys, "purchase", str(REPO / "events/purchase/webhook_transaction_completed.json"))
    assert code == 0 and json.loads(out)["statusCode"] == 200


@pytest.mark.parametrize(("function", "directives", "message"), [
    ("subscribe", {"signPaddleWebhook": True}, "applies to the purchase function's POST /api/webhooks/paddle"),
    ("purchase", {"teleport": True}, "unknown dramacInvoke directive(s) teleport"),
])
def test_invoke_refuses_directives_it_cannot_honour(blank_database: str, capsys, tmp_path: Path, function: str,
                                                    directives: dict, message: str) -> None:
    os.environ["DATABASE_URL"] = blank_database
    event = json.loads((REPO / "events/subscribe/health.json").read_text()) | {"dramacInvoke": directives}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    code, out, err = invoke(capsys, function, str(path))
    assert (code, out) == (2, "") and message in err
