"""ModuleDatabaseSDK on real PostgreSQL: each call, site isolation (enforced by the SDK and by RLS),
real transactions for batch, automation events in the same transaction, module gates."""

import uuid

import pytest
from dramac_common.core import db
from dramac_common.core.errors import ApiError, Conflict, NotFound, ValidationFailed
from dramac_common.module_data import ModuleDatabaseSDK, Query, WidgetStorage, parse_query_params
from support.automation import listen
from support.handlers import claims_for
from support.modules import install_module, make_crm


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant, aws):
    module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant)
    return module_id, slug


def sdk_for(unit, tenant, module):
    return ModuleDatabaseSDK.for_request(unit, site_id=tenant.site_id, module=module)


def events_of(owner_conn, site_id):
    return owner_conn.execute(
        "SELECT id, event_type, payload, source_module, source_entity_type, source_entity_id FROM automation_events_log "
        "WHERE site_id = %s AND source_module <> 'marketplace' ORDER BY created_at, event_type",
        (site_id,)).fetchall()


def test_create_one_sets_the_site_and_refuses_another_sites_id(crm, tenant, other_tenant, owner_conn):
    module_id, _ = crm
    with pytest.raises(ValidationFailed) as refused, db.user_unit(claims_for(tenant.owner)) as unit:
        sdk_for(unit, tenant, module_id).create_one(
            "contacts", {"email": "eve@example.com", "site_id": str(other_tenant.site_id)})
    assert refused.value.details[0]["code"] == "site_mismatch"
    with db.user_unit(claims_for(tenant.owner)) as unit:
        row = sdk_for(unit, tenant, module_id).create_one(
            "contacts", {"email": "ada@example.com", "site_id": str(tenant.site_id)})
    assert row["site_id"] == tenant.site_id
    assert row["status"] == "lead" and row["lead_score"] == 0
    stored = owner_conn.execute(f"SELECT site_id FROM mod_{module_id.hex[:8]}.contacts").fetchall()
    assert [r["site_id"] for r in stored] == [tenant.site_id]


def test_find_filters_orders_selects_and_pages(crm, tenant):
    _module_id, slug = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, slug)
        sdk.create("contacts", [{"email": f"u{i}@example.com", "lead_score": i * 10, "status": "active" if i % 2 else "lead"}
                                for i in range(10)])
        hot = sdk.find("contacts", {"lead_score": {"gte": 50}, "status": "active"}, select=["email", "lead_score"],
                       order_by="lead_score.desc", limit=2, offset=1)
        some = sdk.find("contacts", {"email": {"in": ["u1@example.com", "u2@example.com", "nobody@x"]}})
        like = sdk.find("contacts", {"email": {"ilike": "U9@%"}})
        none_deleted = sdk.count("contacts", {"deleted_at": None})
    assert hot == [{"email": "u7@example.com", "lead_score": 70}, {"email": "u5@example.com", "lead_score": 50}]
    assert sorted(r["email"] for r in some) == ["u1@example.com", "u2@example.com"]
    assert [r["email"] for r in like] == ["u9@example.com"]
    assert none_deleted == 10


def test_count_is_a_real_count_and_exists(crm, tenant, other_tenant, owner_conn):
    module_id, _ = crm
    for t in (tenant, other_tenant):  # setup as the table owner: 1200 rows per site
        owner_conn.execute(f"INSERT INTO mod_{module_id.hex[:8]}.contacts (site_id, email, lead_score) "
                           "SELECT %s, 'c' || i || '@example.com', i FROM generate_series(0, 1199) i", (t.site_id,))
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        total = sdk.count("contacts")
        high = sdk.count("contacts", {"lead_score": {"gte": 1000}})
        rows, count = sdk.query("contacts", Query(limit=5, count=True))
        past_end, count_past_end = sdk.query("contacts", Query(limit=5, offset=5000, count=True))
        assert sdk.exists("contacts", {"email": "c3@example.com"})
        assert not sdk.exists("contacts", {"email": "nobody@example.com"})
    assert (total, high, len(rows), count, past_end, count_past_end) == (1200, 200, 5, 1200, [], 1200)


def test_update_and_delete_by_id_emit_events_with_previous(crm, tenant, owner_conn, aws):
    module_id, slug = crm
    listen(owner_conn, tenant.site_id, f"{slug}.contact.created", f"{slug}.contact.updated", f"{slug}.deal_note.created")
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        contact = sdk.create_one("contacts", {"email": "ada@example.com", "lead_score": 5})
        updated = sdk.update_by_id("contacts", contact["id"], {"lead_score": 60, "status": "qualified"})
        deleted = sdk.delete_by_id("contacts", contact["id"])
        note = sdk.create_one("deal_notes", {"body": "hello", "amount": "12.50"})
    assert updated["lead_score"] == 60 and updated["updated_at"] >= contact["updated_at"]
    assert deleted["id"] == contact["id"]
    events = events_of(owner_conn, tenant.site_id)
    by_type = {e["event_type"]: e for e in events}
    assert set(by_type) == {f"{slug}.contact.created", f"{slug}.contact.updated", f"{slug}.contact.deleted",
                            f"{slug}.deal_note.created"}
    upd = by_type[f"{slug}.contact.updated"]
    assert upd["payload"]["lead_score"] == 60
    assert upd["payload"]["previous"]["lead_score"] == 5
    assert upd["source_module"] == slug and upd["source_entity_type"] == "contact"
    assert upd["source_entity_id"] == str(contact["id"])
    assert by_type[f"{slug}.contact.deleted"]["payload"]["email"] == "ada@example.com"
    assert note["amount"] == pytest.approx(12.5)
    # those a workflow listens to are handed to the events queue after commit; contact.deleted, which no
    # workflow listens to, was marked received at insert and is not sent
    sent = {m["eventId"] for m in aws.take("events")}
    heard = {str(e["id"]) for e in events if e["event_type"] != f"{slug}.contact.deleted"}
    assert sent == heard


def test_bulk_create_emits_one_event_per_row_in_one_transaction(crm, tenant, owner_conn):
    module_id, slug = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        rows = sdk_for(unit, tenant, module_id).create("companies", [{"name": f"Co {i}"} for i in range(25)])
    assert len(rows) == 25
    events = events_of(owner_conn, tenant.site_id)
    assert [e["event_type"] for e in events] == [f"{slug}.company.created"] * 25
    assert {e["source_entity_id"] for e in events} == {str(r["id"]) for r in rows}


def test_sdk_events_go_through_the_shared_outbox_rules(crm, tenant, owner_conn, aws):
    """Chain depth from the transaction (as a workflow step sets it), no agency, sent after commit."""
    from dramac_common.automation import dal

    _, slug = crm
    listen(owner_conn, tenant.site_id, f"{slug}.contact.created")
    with db.service_unit() as unit:
        dal.set_automation_depth(unit, 2)
        sdk = ModuleDatabaseSDK.for_service(unit, module_slug=slug, site_id=tenant.site_id)
        contact = sdk.create_one("contacts", {"email": "deep@example.com"})
    event = owner_conn.execute(
        "SELECT id, event_type, chain_depth, agency_id FROM automation_events_log "
        "WHERE source_entity_id = %s", (str(contact["id"]),)).fetchone()
    assert (event["event_type"], event["chain_depth"], event["agency_id"]) == (f"{slug}.contact.created", 2, None)
    assert {"eventId": str(event["id"])} in aws.take("events")


def test_statement_level_events_refuse_a_type_unknown_on_the_site(crm, tenant):
    from dramac_common.automation.outbox import events_for_rows
    from psycopg import sql

    _, slug = crm
    with db.service_unit() as unit, pytest.raises(ValidationFailed) as refused:
        events_for_rows(unit, tenant.site_id, f"{slug}.invoice.created", rows="changed", payload=sql.SQL("'{}'"),
                        source_module=slug, source_entity_type="invoice", source_entity_id=sql.SQL("r.id::text"))
    assert refused.value.code == "unknown_event_type"


def test_a_site_never_sees_or_changes_another_sites_rows(crm, tenant, other_tenant, owner_conn):
    module_id, _ = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        mine = sdk_for(unit, tenant, module_id).create_one("contacts", {"email": "mine@a.test"})
    with db.user_unit(claims_for(other_tenant.owner)) as unit:
        sdk = sdk_for(unit, other_tenant, module_id)
        sdk.create_one("contacts", {"email": "theirs@b.test"})
        seen = sdk.find("contacts", {"site_id": str(tenant.site_id)})
        by_id = sdk.find_by_id("contacts", mine["id"])
        updated = sdk.update_by_id("contacts", mine["id"], {"email": "hijacked@b.test"})
        bulk = sdk.update("contacts", {"id": mine["id"]}, {"email": "hijacked@b.test"})
        deleted = sdk.delete_by_id("contacts", mine["id"])
        count = sdk.count("contacts")
    assert (seen, by_id, updated, bulk, deleted, count) == ([], None, None, [], None, 1)
    row = owner_conn.execute(f"SELECT email FROM mod_{module_id.hex[:8]}.contacts WHERE id = %s",
                             (mine["id"],)).fetchone()
    assert row["email"] == "mine@a.test"


def test_rls_hides_other_sites_even_when_a_query_forgets_the_site(crm, tenant, other_tenant):
    module_id, _ = crm
    for t in (tenant, other_tenant):
        with db.user_unit(claims_for(t.owner)) as unit:
            sdk_for(unit, t, module_id).create_one("contacts", {"email": f"{t.site_id}@x.test"})
    with db.user_unit(claims_for(tenant.owner)) as unit:
        rows = unit.fetchall(f"SELECT site_id FROM mod_{module_id.hex[:8]}.contacts")  # no site filter
    assert {r["site_id"] for r in rows} == {tenant.site_id}


def test_foreign_key_to_another_sites_row_is_refused(crm, tenant, other_tenant):
    module_id, _ = crm
    with db.user_unit(claims_for(other_tenant.owner)) as unit:
        theirs = sdk_for(unit, other_tenant, module_id).create_one("companies", {"name": "Theirs"})
    with pytest.raises(ValidationFailed) as err:
        with db.user_unit(claims_for(tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id).create_one("contacts", {"email": "x@a.test", "company_id": theirs["id"]})
    assert err.value.code == "invalid_reference"


def test_batch_is_all_or_none(crm, tenant, owner_conn):
    module_id, _ = crm
    with pytest.raises(NotFound):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id).batch([
                {"op": "create", "table": "companies", "values": {"name": "Acme"}},
                {"op": "create", "table": "contacts", "values": [{"email": "a@x.test"}, {"email": "b@x.test"}]},
                {"op": "update", "table": "contacts", "id": str(uuid.uuid4()), "values": {"status": "won"}},
            ])
    short = module_id.hex[:8]
    assert owner_conn.execute(f"SELECT count(*) AS n FROM mod_{short}.contacts").fetchone()["n"] == 0
    assert owner_conn.execute(f"SELECT count(*) AS n FROM mod_{short}.companies").fetchone()["n"] == 0
    assert events_of(owner_conn, tenant.site_id) == []


def test_batch_failure_is_rolled_back_even_if_the_caller_carries_on(crm, tenant, owner_conn):
    module_id, _ = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        with pytest.raises(NotFound):
            sdk.batch([{"op": "create", "table": "companies", "values": {"name": "Gone"}},
                       {"op": "delete", "table": "companies", "id": str(uuid.uuid4())}])
        sdk.create_one("companies", {"name": "Kept"})
    names = owner_conn.execute(f"SELECT name FROM mod_{module_id.hex[:8]}.companies").fetchall()
    assert [r["name"] for r in names] == ["Kept"]


def test_batch_applies_every_operation(crm, tenant):
    module_id, _ = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        existing = sdk.create_one("contacts", {"email": "old@x.test"})
        results = sdk.batch([
            {"op": "create", "table": "companies", "values": {"name": "Acme"}},
            {"op": "update", "table": "contacts", "where": {"email": "old@x.test"}, "values": {"lead_score": 9}},
            {"type": "delete", "table": "contacts", "id": str(existing["id"])},
        ])
        left = sdk.count("contacts")
    assert [r["op"] for r in results] == ["create", "update", "delete"]
    assert results[1]["data"][0]["lead_score"] == 9
    assert left == 0


def test_batch_with_an_invalid_operation_runs_nothing(crm, tenant):
    module_id, _ = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        with pytest.raises(ValidationFailed) as err:
            sdk.batch([{"op": "create", "table": "companies", "values": {"name": "A"}},
                       {"op": "create", "table": "contacts", "values": {"nope": 1}}])
        assert sdk.count("companies") == 0
    assert err.value.details[0]["operation"] == 1


@pytest.mark.parametrize("call, code", [
    (lambda s: s.find("nope"), "unknown_table"),
    (lambda s: s.find("contacts", {"nope": 1}), "unknown_column"),
    (lambda s: s.find("contacts", select=["nope"]), "unknown_column"),
    (lambda s: s.find("contacts", order_by="nope.desc"), "unknown_column"),
    (lambda s: s.find("contacts", {"lead_score": "many"}), "invalid_value"),
    (lambda s: s.find("contacts", {"company_id": "not-a-uuid"}), "invalid_value"),
    (lambda s: s.find("contacts", {"birthday": {"gt": "yesterday"}}), "invalid_value"),
    (lambda s: s.create_one("contacts", {"first_name": "no email"}), "missing_value"),
    (lambda s: s.create_one("contacts", {"email": "x@y", "id": str(uuid.uuid4())}), "read_only_column"),
    (lambda s: s.create_one("contacts", {"email": "x@y", "lead_score": 3_000_000_000}), "invalid_value"),
    (lambda s: s.create_one("contacts", {"email": "x@y", "lead_score": -1}), "check_violation"),
    (lambda s: s.create_one("contacts", {"email": 42}), "invalid_value"),
    (lambda s: s.create_one("contacts", {"email": "x@y", "tags": "not a list"}), "invalid_value"),
    (lambda s: s.update("contacts", {}, {"status": "x"}), "filter_required"),
])
def test_bad_tables_columns_and_values_are_clear_400s(crm, tenant, call, code):
    module_id, _ = crm
    with pytest.raises(ApiError) as err:
        with db.user_unit(claims_for(tenant.owner)) as unit:
            call(sdk_for(unit, tenant, module_id))
    assert err.value.status == 400
    assert err.value.code == code


def test_typed_values_round_trip(crm, tenant):
    module_id, _ = crm
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk = sdk_for(unit, tenant, module_id)
        row = sdk.create_one("contacts", {"email": "t@x.test", "tags": ["a", "b"], "profile": {"k": [1, 2]},
                                          "birthday": "1990-05-17", "vip": True})
        found = sdk.query("contacts", parse_query_params([("vip", "is.true"), ("birthday", "lt.2000-01-01"),
                                                          ("profile", 'eq.{"k": [1, 2]}')]))[0]
    assert row["tags"] == ["a", "b"] and row["profile"] == {"k": [1, 2]} and row["vip"] is True
    assert [r["id"] for r in found] == [row["id"]]


@pytest.mark.parametrize("status, enabled, expected, code", [
    ("active", False, NotFound, "module_disabled"),
    ("disabled", True, NotFound, "module_disabled"),
    ("provisioning", True, Conflict, "module_provisioning"),
    ("failed", True, Conflict, "module_provisioning_failed"),
])
def test_module_must_be_active_and_enabled(crm, tenant, owner_conn, status, enabled, expected, code):
    module_id, _ = crm
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module_id,
                   status=status, is_enabled=enabled)
    with pytest.raises(expected) as err:
        with db.user_unit(claims_for(tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id)
    assert err.value.code == code


def test_module_not_installed_on_the_site_is_404(owner_conn, make_module, tenant, other_tenant, aws):
    module_id, _ = make_crm(owner_conn, make_module, other_tenant)
    with pytest.raises(NotFound) as err:
        with db.user_unit(claims_for(tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id)
    assert err.value.code == "module_not_installed"


def test_a_user_of_another_agency_cannot_open_the_site(crm, tenant, other_tenant):
    module_id, _ = crm
    with pytest.raises(NotFound):
        with db.user_unit(claims_for(other_tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id)


def test_service_sdk_creates_and_updates_within_one_site(crm, tenant, other_tenant, owner_conn):
    module_id, slug = crm
    with db.user_unit(claims_for(other_tenant.owner)) as unit:
        theirs = sdk_for(unit, other_tenant, module_id).create_one("contacts", {"email": "theirs@b.test"})
    with db.service_unit() as unit:
        sdk = ModuleDatabaseSDK.for_service(unit, module_slug=slug, site_id=tenant.site_id)
        created = sdk.create_one("contacts", {"email": "worker@a.test"})
        updated = sdk.update_by_id("contacts", created["id"], {"lead_score": 77})
        not_mine = sdk.update_by_id("contacts", theirs["id"], {"lead_score": 1})
        with pytest.raises(ValidationFailed):
            sdk.create_one("contacts", {"email": "x", "lead_score": -5})
        # the worker's own transaction is still usable, and back to its own role
        role = unit.fetchone("SELECT current_user AS who, current_setting('request.jwt.claims', true) AS claims")
    assert updated["lead_score"] == 77 and not_mine is None
    assert role["who"] != "authenticated" and not role["claims"]
    assert {e["event_type"] for e in events_of(owner_conn, tenant.site_id)} == {
        f"{slug}.contact.created", f"{slug}.contact.updated"}


def test_service_sdk_refuses_a_disabled_module(crm, tenant, owner_conn):
    module_id, slug = crm
    install_module(owner_conn, site_id=tenant.site_id, agency_id=tenant.agency_id, module_id=module_id,
                   is_enabled=False)
    with pytest.raises(NotFound):
        with db.service_unit() as unit:
            ModuleDatabaseSDK.for_service(unit, module_slug=slug, site_id=tenant.site_id)


def test_widget_storage_get_set_delete_and_list(owner_conn, make_module, tenant, other_tenant):
    module_id = make_module(module_type="widget")
    for t in (tenant, other_tenant):
        install_module(owner_conn, site_id=t.site_id, agency_id=t.agency_id, module_id=module_id)
    with db.user_unit(claims_for(tenant.owner)) as unit:
        store = WidgetStorage.for_request(unit, site_id=tenant.site_id, module=module_id)
        store.set("form.title", "Hello")
        store.set("form.fields", ["name", "email"])
        store.set("theme", {"dark": True})
        store.set("form.title", "Hi")
        assert store.get("form.title") == "Hi"
        assert store.list_keys("form.") == ["form.fields", "form.title"]
        assert store.delete("theme") and not store.delete("theme")
    with db.user_unit(claims_for(other_tenant.owner)) as unit:
        store = WidgetStorage.for_request(unit, site_id=other_tenant.site_id, module=module_id)
        assert store.list_keys() == [] and store.get("form.title", "none") == "none"


def _merge_held_open_while_another_waits(tenant, module_id, owner_conn, row_id, first_score, second_score):
    """Merge ``row_id`` in a transaction held open until a second merge of the same row is waiting on
    it, then commit; returns when the second has finished."""
    import threading
    import time

    done = threading.Event()
    failure: list[BaseException] = []

    def second() -> None:
        try:
            with db.user_unit(claims_for(tenant.owner)) as unit:
                sdk_for(unit, tenant, module_id).insert(
                    "contacts", {"id": str(row_id), "email": "b@example.com", "lead_score": second_score},
                    resolution="merge")
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk_for(unit, tenant, module_id).insert(
            "contacts", {"id": str(row_id), "email": "a@example.com", "lead_score": first_score}, resolution="merge")
        waiter = threading.Thread(target=second)
        waiter.start()
        for _ in range(500):  # until the second merge waits on this transaction's row lock
            if owner_conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'").fetchone()["n"]:
                break
            time.sleep(0.01)
    waiter.join(30)
    assert done.is_set() and not failure, failure


def _events_of_row(owner_conn, row_id):
    return owner_conn.execute(
        "SELECT event_type, payload FROM automation_events_log WHERE source_entity_id = %s ORDER BY created_at, id",
        (str(row_id),)).fetchall()


def test_concurrent_merges_of_a_row_report_the_row_each_one_replaced(crm, tenant, owner_conn):
    """Two merges of one existing row at the same moment: the second's ``previous`` is the first's
    result (the row it really replaced), not what its snapshot saw before the first committed."""
    module_id, _ = crm
    row_id = uuid.uuid4()
    with db.user_unit(claims_for(tenant.owner)) as unit:
        sdk_for(unit, tenant, module_id).insert("contacts", {"id": str(row_id), "email": "x@example.com",
                                                             "lead_score": 10}, resolution="merge")
    _merge_held_open_while_another_waits(tenant, module_id, owner_conn, row_id, 20, 30)
    updated = [e["payload"] for e in _events_of_row(owner_conn, row_id) if e["event_type"].endswith(".updated")]
    assert [(u["previous"]["lead_score"], u["lead_score"]) for u in updated] == [(10, 20), (20, 30)]


def test_concurrent_merges_of_a_new_row_report_one_creation_and_one_update_of_it(crm, tenant, owner_conn):
    """Two merges of a row that does not exist yet: the first creates it, the second updates what the
    first created (its ``previous``), never an update of nothing."""
    module_id, _ = crm
    row_id = uuid.uuid4()
    _merge_held_open_while_another_waits(tenant, module_id, owner_conn, row_id, 20, 30)
    events = _events_of_row(owner_conn, row_id)
    assert [e["event_type"].rsplit(".", 1)[1] for e in events] == ["created", "updated"]
    assert (events[1]["payload"]["previous"]["lead_score"], events[1]["payload"]["lead_score"]) == (20, 30)


def test_a_merge_sends_only_the_events_a_workflow_listens_to(crm, tenant, owner_conn, aws):
    """The merge writes its created and updated events in one statement; only those of a type a
    workflow on the site listens to reach the queue (migration 0180)."""
    module_id, slug = crm
    listen(owner_conn, tenant.site_id, f"{slug}.contact.updated")
    aws.take("events")
    row_id = uuid.uuid4()
    for score in (10, 20):
        with db.user_unit(claims_for(tenant.owner)) as unit:
            sdk_for(unit, tenant, module_id).insert("contacts", {"id": str(row_id), "email": "x@example.com",
                                                                 "lead_score": score}, resolution="merge")
    events = owner_conn.execute(
        "SELECT id, event_type, dispatched_at FROM automation_events_log WHERE source_entity_id = %s ORDER BY created_at",
        (str(row_id),)).fetchall()
    assert [e["event_type"] for e in events] == [f"{slug}.contact.created", f"{slug}.contact.updated"]
    assert events[0]["dispatched_at"] is not None and events[1]["dispatched_at"] is None
    assert [m["eventId"] for m in aws.take("events")] == [str(events[1]["id"])]
