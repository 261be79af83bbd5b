"""End to end over the local stack: subscribe an agency to a module, install it on a site, and poll
until the provision worker (fed by the local SQS poller) has made it active."""

import time
import uuid

import psycopg

from dramac_dev.seed import CRM_MANIFEST


def test_subscribe_install_and_poll_until_active(local_stack, tenant, make_module, database_url):
    module = make_module(module_id=uuid.uuid4(), module_type="app", manifest=CRM_MANIFEST)
    site_module = f"/api/sites/{tenant.site_id}/modules/{module}"
    with local_stack.client(tenant.owner) as http:
        subscribed = http.post("/api/modules/subscribe", json={"agencyId": str(tenant.agency_id),
                                                                "moduleId": str(module)})
        assert subscribed.status_code == 201
        installed = http.post(site_module, json={"config": {"pipeline": "sales"}})
        assert installed.status_code == 202
        assert installed.json()["data"]["status"] == "provisioning"
        deadline = time.monotonic() + 30
        status = "provisioning"
        while status == "provisioning" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = http.get(site_module).json()["data"]["status"]
        assert status == "active", "\n".join(local_stack.output[-30:])
        listed = http.get(f"/api/sites/{tenant.site_id}/modules").json()["data"]
        assert [(i["moduleId"], i["status"], i["isEnabled"]) for i in listed] == [(str(module), "active", True)]
        disabled = http.delete(site_module)
        assert (disabled.status_code, disabled.json()["data"]["status"]) == (200, "disabled")
    with psycopg.connect(database_url) as conn:
        schema = conn.execute("SELECT schema_name FROM module_database_registry WHERE module_id = %s",
                              (module,)).fetchone()[0]
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.contacts",)).fetchone()[0]


def test_member_cannot_install_over_http(local_stack, tenant, make_module):
    module = make_module(module_type="widget")
    with local_stack.client(tenant.member) as http:
        reply = http.post(f"/api/sites/{tenant.site_id}/modules/{module}")
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")
