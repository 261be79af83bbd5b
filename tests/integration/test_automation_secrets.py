"""Connections and typed-in step secrets: encrypted at rest (envelopes under moto's KMS), used by the
steps that name them, and never in any answer, step log, execution record or log line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets

import pytest
from support.automation import create_workflow, emit, executions, step_logs

MASK = "********"


@pytest.fixture
def api(function_client):
    return function_client("automation")


def base(tenant) -> str:
    return f"/api/sites/{tenant.site_id}/automation"


def a_secret(label: str) -> str:
    return f"{label}-{secrets.token_urlsafe(18)}"


def everything_stored(owner_conn) -> str:
    """Every row of every table of the database, as text: where a secret must never be found."""
    tables = owner_conn.execute(
        "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables "
        "WHERE schemaname IN ('public', 'private', 'auth')").fetchall()
    return "\n".join(
        str(owner_conn.execute(f"SELECT coalesce(string_agg(t::text, E'\\n'), '') AS rows FROM {t['name']} t")
            .fetchone()["rows"]) for t in tables)


def create_connection(api, tenant, name: str, kind: str, credentials: dict, user=None):
    reply = api.post(f"{base(tenant)}/connections", user=user or tenant.owner,
                     body={"name": name, "type": kind, "credentials": credentials})
    assert reply.status == 201, reply.body
    return reply


def http_step(url: str, **config) -> dict:
    return {"type": "http_request", "config": {"method": "POST", "url": url, **config}}


def test_connection_is_answered_masked_and_stored_encrypted(api, tenant, aws, owner_conn):
    token = a_secret("tok")
    created = create_connection(api, tenant, "crm_api", "bearer", {"token": token})
    assert created.data["credentials"] == {"token": MASK}
    assert (created.data["name"], created.data["type"]) == ("crm_api", "bearer")
    listed = api.get(f"{base(tenant)}/connections", user=tenant.member)
    one = api.get(f"{base(tenant)}/connections/{created.data['id']}", user=tenant.member)
    assert listed.status == one.status == 200
    assert one.data == created.data and listed.data == [created.data]
    for reply in (created, listed, one):
        assert token not in json.dumps(reply.body) and token not in json.dumps(reply.headers)
    row = owner_conn.execute("SELECT secret_envelope FROM automation_connections WHERE id = %s",
                             (created.data["id"],)).fetchone()
    assert set(row["secret_envelope"]) == {"v", "keyId", "dataKey", "nonce", "ciphertext"}
    assert token not in everything_stored(owner_conn)


def test_only_owners_and_admins_change_connections(api, tenant, other_tenant, aws):
    body = {"name": "mailer", "type": "api_key", "credentials": {"token": a_secret("k")}}
    assert api.post(f"{base(tenant)}/connections", user=tenant.member, body=body).body["code"] == "forbidden"
    assert api.post(f"{base(tenant)}/connections", user=other_tenant.owner, body=body).status == 404
    created = api.post(f"{base(tenant)}/connections", user=tenant.admin, body=body)
    assert created.status == 201 and created.data["config"] == {"header": "X-Api-Key"}
    path = f"{base(tenant)}/connections/{created.data['id']}"
    rotate = {"credentials": {"token": a_secret("k2")}}
    assert api.post(f"{path}/rotate", user=tenant.member, body=rotate).status == 403
    assert api.delete(path, user=tenant.member).status == 403
    assert api.get(path, user=other_tenant.owner).status == 404
    assert api.delete(path, user=other_tenant.owner).status == 404
    assert api.post(f"{path}/rotate", user=tenant.owner, body=rotate).data["rotatedAt"] is not None
    assert api.delete(path, user=tenant.owner).data == {"id": created.data["id"], "deleted": True}
    assert api.get(path, user=tenant.owner).status == 404


def test_connection_changes_are_audited_without_the_secret(api, tenant, aws, owner_conn):
    token, rotated = a_secret("tok"), a_secret("tok2")
    created = create_connection(api, tenant, "billing", "bearer", {"token": token})
    path = f"{base(tenant)}/connections/{created.data['id']}"
    api.post(f"{path}/rotate", user=tenant.admin, body={"credentials": {"token": rotated}})
    api.delete(path, user=tenant.owner)
    rows = owner_conn.execute(
        "SELECT action, actor_user_id, actor_role, target_id, details FROM audit_log "
        "WHERE target_id = %s ORDER BY id", (created.data["id"],)).fetchall()
    assert [(r["action"], r["actor_user_id"], r["actor_role"]) for r in rows] == [
        ("connection.created", tenant.owner, "owner"), ("connection.rotated", tenant.admin, "admin"),
        ("connection.deleted", tenant.owner, "owner")]
    assert all(r["details"] == {"name": "billing", "type": "bearer"} for r in rows)
    assert token not in json.dumps(rows, default=str) and rotated not in json.dumps(rows, default=str)


def test_bad_connections_are_refused_and_change_nothing(api, tenant, aws, owner_conn):
    cases = [
        ({"name": "x", "type": "oauth", "credentials": {"token": "abc"}}, "validation_error"),
        ({"name": "x", "type": "bearer", "credentials": {}}, "validation_error"),
        ({"name": "x", "type": "bearer", "credentials": {"token": MASK}}, "validation_error"),
        ({"name": "x", "type": "basic", "credentials": {"password": "pass-word"}}, "validation_error"),
        ({"name": "x", "type": "bearer", "credentials": {"token": "ab"}}, "validation_error"),
        ({"name": "x", "type": "bearer", "credentials": {"token": "t", "extra": "e"}}, "validation_error"),
        ({"name": "Not A Name", "type": "bearer", "credentials": {"token": "t"}}, "validation_error"),
    ]
    for body, code in cases:
        reply = api.post(f"{base(tenant)}/connections", user=tenant.owner, body=body)
        assert (reply.status, reply.body["code"]) == (400, code), body
    create_connection(api, tenant, "dup", "bearer", {"token": "one-token"})
    again = api.post(f"{base(tenant)}/connections", user=tenant.owner,
                     body={"name": "dup", "type": "bearer", "credentials": {"token": "two-token"}})
    assert (again.status, again.body["code"]) == (409, "connection_exists")
    count = owner_conn.execute("SELECT count(*) AS n FROM automation_connections WHERE site_id = %s",
                               (tenant.site_id,)).fetchone()["n"]
    assert count == 1


def test_without_a_kms_key_nothing_is_stored_in_clear(api, tenant, aws, env, owner_conn):
    env.unset("AUTOMATION_KMS_KEY_ID")
    token = a_secret("tok")
    reply = api.post(f"{base(tenant)}/connections", user=tenant.owner,
                     body={"name": "nokey", "type": "bearer", "credentials": {"token": token}})
    assert (reply.status, reply.body["code"], reply.body["success"]) == (503, "secrets_unavailable", False)
    assert token not in everything_stored(owner_conn)


def test_workflow_authenticates_with_its_connection_and_the_secret_is_never_written_or_logged(
        api, tenant, aws, receiver, owner_conn, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.echo_headers = True  # the receiver answers the credentials it got: the echo must be redacted
    token = a_secret("tok")
    create_connection(api, tenant, "crm_api", "bearer", {"token": token})
    # in the query too: the HTTP client logs every URL it calls
    workflow = create_workflow(api, tenant, [http_step(
        f"{receiver.url}/hooks?key={{{{connections.crm_api.token}}}}", connection="crm_api",
        body={"copy": "{{connections.crm_api.token}}", "id": "{{event.payload.id}}"})])
    emit(tenant.site_id, "crm.contact.created", {"id": "c-1"})
    aws.drain()
    [request] = receiver.requests
    assert request.path == f"/hooks?key={token}"
    assert "/hooks?key=[redacted]" in caplog.text  # the URL was logged, without the secret
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.body == {"copy": token, "id": "c-1"}
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed"
    [log] = step_logs(owner_conn, execution["id"])
    assert log["output"]["body"]["echo"]["copy"] == "[redacted]"
    assert log["output"]["body"]["headers"]["authorization"] == "Bearer [redacted]"
    detail = api.get(f"{base(tenant)}/executions/{execution['id']}", user=tenant.owner)
    read = api.get(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.member)
    for reply in (detail, read):
        assert reply.status == 200 and token not in json.dumps(reply.body)
    assert token not in everything_stored(owner_conn)
    assert token not in caplog.text


def test_each_connection_type_authenticates_as_documented(api, tenant, aws, receiver, owner_conn):
    key, password, signing = a_secret("key"), a_secret("pw"), base64.b64encode(secrets.token_bytes(24)).decode()
    create_connection(api, tenant, "keyed", "api_key", {"token": key, "header": "X-Partner-Key"})
    create_connection(api, tenant, "basic_one", "basic", {"username": "ada", "password": password})
    create_connection(api, tenant, "signed", "webhook_signing", {"secret": f"whsec_{signing}"})
    workflow = create_workflow(api, tenant, [
        http_step(f"{receiver.url}/k", connection="keyed"),
        http_step(f"{receiver.url}/b", connection="basic_one"),
        http_step(f"{receiver.url}/s", connection="signed", body={"hello": "{{event.payload.id}}"}),
    ])
    emit(tenant.site_id, "crm.contact.created", {"id": "c-2"})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "completed", execution
    keyed, basic, signed = receiver.requests
    assert keyed.headers["x-partner-key"] == key
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(f"ada:{password}".encode()).decode()
    # Standard Webhooks: the receiver checks the signature over id.timestamp.body with the shared secret
    content = json.dumps(signed.body)
    expected = hmac.new(base64.b64decode(signing),
                        f"{signed.headers['webhook-id']}.{signed.headers['webhook-timestamp']}.{content}".encode(),
                        hashlib.sha256).digest()
    assert signed.headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    stored = everything_stored(owner_conn)
    for secret in (key, password, signing, base64.b64encode(f"ada:{password}".encode()).decode()):
        assert secret not in stored


def test_rotated_credentials_are_used_by_the_next_execution(api, tenant, aws, receiver, owner_conn):
    old, new = a_secret("old"), a_secret("new")
    created = create_connection(api, tenant, "rotating", "bearer", {"token": old})
    create_workflow(api, tenant, [http_step(f"{receiver.url}/r", connection="rotating")])
    emit(tenant.site_id, "crm.contact.created", {"id": "1"})
    aws.drain()
    api.post(f"{base(tenant)}/connections/{created.data['id']}/rotate", user=tenant.owner,
             body={"credentials": {"token": new}})
    emit(tenant.site_id, "crm.contact.created", {"id": "2"})
    aws.drain()
    assert [r.headers["authorization"] for r in receiver.requests] == [f"Bearer {old}", f"Bearer {new}"]


def test_a_deleted_connection_fails_the_step_readably(api, tenant, aws, receiver, owner_conn):
    created = create_connection(api, tenant, "gone", "bearer", {"token": a_secret("t")})
    workflow = create_workflow(api, tenant, [http_step(f"{receiver.url}/g", connection="gone")])
    api.delete(f"{base(tenant)}/connections/{created.data['id']}", user=tenant.owner)
    emit(tenant.site_id, "crm.contact.created", {"id": "1"})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed"
    assert execution["error"] == "step 1 (http_request) failed: no active connection named 'gone' on this site"
    assert receiver.requests == []


def test_an_envelope_copied_to_another_site_does_not_open(api, tenant, other_tenant, aws, receiver, owner_conn):
    token = a_secret("t")
    mine = create_connection(api, tenant, "mine", "bearer", {"token": token})
    theirs = create_connection(api, other_tenant, "mine", "bearer", {"token": a_secret("other")})
    owner_conn.execute(
        "UPDATE automation_connections SET secret_envelope = (SELECT secret_envelope FROM automation_connections "
        "WHERE id = %s) WHERE id = %s", (mine.data["id"], theirs.data["id"]))
    workflow = create_workflow(api, other_tenant, [http_step(f"{receiver.url}/x", connection="mine")])
    emit(other_tenant.site_id, "crm.contact.created", {"id": "1"})
    aws.drain()
    [execution] = executions(owner_conn, workflow["id"])
    assert execution["status"] == "failed" and "refused to open a stored secret" in execution["error"]
    assert receiver.requests == []


def test_steps_may_only_use_existing_connections_in_http_requests(api, tenant, aws):
    create_connection(api, tenant, "known", "bearer", {"token": a_secret("t")})
    cases = [
        [http_step("https://example.test/x", connection="unknown")],
        [http_step("https://example.test/x", body={"t": "{{connections.unknown.token}}"})],
        [http_step("https://example.test/x", body={"t": "{{connections.known}}"})],
        [{"type": "set_variable", "config": {"name": "leak", "value": "{{connections.known.token}}"}}],
    ]
    for steps in cases:
        reply = api.post(f"{base(tenant)}/workflows", user=tenant.owner,
                         body={"name": "w", "triggerEventType": "crm.contact.created", "steps": steps})
        assert (reply.status, reply.body["code"]) == (400, "validation_error"), (steps, reply.body)


def test_typed_header_values_are_encrypted_masked_and_still_sent(api, tenant, aws, receiver, owner_conn, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.echo_headers = True
    typed = a_secret("typed")
    workflow = create_workflow(api, tenant, [http_step(
        f"{receiver.url}/t", headers={"Authorization": f"Token {typed}", "Content-Type": "application/json"})])
    headers = workflow["steps"][0]["config"]["headers"]
    assert headers == {"Authorization": MASK, "Content-Type": "application/json"}
    read = api.get(f"{base(tenant)}/workflows/{workflow['id']}", user=tenant.member)
    assert read.data["steps"][0]["config"]["headers"]["Authorization"] == MASK
    emit(tenant.site_id, "crm.contact.created", {"id": "1"})
    aws.drain()
    assert receiver.requests[0].headers["authorization"] == f"Token {typed}"
    [execution] = executions(owner_conn, workflow["id"])
    [log] = step_logs(owner_conn, execution["id"])
    assert log["input"]["headers"]["Authorization"] == "[redacted]"
    assert typed not in json.dumps(api.get(f"{base(tenant)}/executions/{execution['id']}", user=tenant.owner).body)
    assert typed not in everything_stored(owner_conn)
    assert typed not in caplog.text


def test_saving_back_a_masked_header_keeps_its_value(api, tenant, aws, receiver, owner_conn):
    typed = a_secret("typed")
    workflow = create_workflow(api, tenant, [http_step(f"{receiver.url}/m", headers={"X-Secret": typed})])
    path = f"{base(tenant)}/workflows/{workflow['id']}"
    # a client saves what it read (the mask), adding a step in front: the header moved to position 2
    read = api.get(path, user=tenant.owner).data
    kept = api.patch(path, user=tenant.owner, body={"steps": [{"type": "http_request", "config": read["steps"][0]["config"]}]})
    assert kept.status == 200 and kept.data["steps"][0]["config"]["headers"] == {"X-Secret": MASK}
    moved = api.patch(path, user=tenant.owner, body={"steps": [
        {"type": "set_variable", "config": {"name": "a", "value": 1}},
        {"type": "http_request", "config": read["steps"][0]["config"]}]})
    assert (moved.status, moved.body["code"]) == (400, "validation_error")
    assert "stands for a stored value" in moved.body["error"]
    emit(tenant.site_id, "crm.contact.created", {"id": "1"})
    aws.drain()
    assert [r.headers["x-secret"] for r in receiver.requests] == [typed]
