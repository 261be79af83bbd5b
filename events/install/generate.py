"""Writes the sample events of ``events/install/`` and ``events/provision/`` with the demo ids of
``dramac_dev.seed`` (run from the repository root: ``.venv/bin/python events/install/generate.py``).

Try them with ``dramac invoke``: subscribe the demo agency to the CRM first
(``dramac invoke subscribe events/subscribe/subscribe_free.json``), then
``dramac invoke install events/install/install_crm.json`` (202, provisioning) and
``dramac invoke provision events/provision/provision_crm.json`` (creates the CRM's schema and
activates the installation); ``get_crm.json`` then shows it active.
"""

from __future__ import annotations

import json
from pathlib import Path

from dramac_dev import seed
from dramac_dev.events import http_event, sqs_event, sqs_record

ROOT = Path(__file__).resolve().parents[1]
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:dramac-provision"
SITE, CRM, BOOKING = seed.DEMO_SITE_ID, seed.DEMO_FREE_MODULE_ID, seed.DEMO_PAID_MODULE_ID


def claims(user):
    return {"sub": str(user), "aud": "authenticated", "iss": "dramac-local", "role": "authenticated",
            "iat": 1700000000, "exp": 4102444800}


def http(name, method, path, user=seed.DEMO_USER_ID, body=None):
    event = http_event(method, path, body=body, claims=claims(user), request_id=f"sample-{name}")
    event["requestContext"]["time"] = "14/Nov/2023:22:13:20 +0000"
    event["requestContext"]["timeEpoch"] = 1700000000000
    return event


def sqs(name, body, receive_count=1):
    record = sqs_record(json.dumps(body), queue_arn=QUEUE_ARN, message_id=f"sample-{name}",
                        receive_count=receive_count)
    record["attributes"]["SentTimestamp"] = record["attributes"]["ApproximateFirstReceiveTimestamp"] = "1700000000000"
    return sqs_event([record])


INSTALL = {
    "list_site_modules": http("list_site_modules", "GET", f"/api/sites/{SITE}/modules", user=seed.DEMO_MEMBER_ID),
    "get_crm": http("get_crm", "GET", f"/api/sites/{SITE}/modules/{CRM}", user=seed.DEMO_MEMBER_ID),
    "install_crm": http("install_crm", "POST", f"/api/sites/{SITE}/modules/{CRM}",
                        body={"config": {"pipeline": "sales"}}),
    "install_member_403": http("install_member_403", "POST", f"/api/sites/{SITE}/modules/{CRM}",
                               user=seed.DEMO_MEMBER_ID),
    "install_unsubscribed_402": http("install_unsubscribed_402", "POST", f"/api/sites/{SITE}/modules/{BOOKING}"),
    "install_bad_site_400": http("install_bad_site_400", "POST", f"/api/sites/not-a-uuid/modules/{CRM}"),
    "disable_crm": http("disable_crm", "DELETE", f"/api/sites/{SITE}/modules/{CRM}"),
}
PROVISION = {
    "provision_crm": sqs("provision_crm", {"action": "provision", "moduleId": str(CRM), "siteId": str(SITE)}),
    "provision_crm_last_receive": sqs("provision_crm_last_receive",
                                      {"action": "provision", "moduleId": str(CRM)}, receive_count=5),
    "purge_demo_site_crm": sqs("purge_demo_site_crm",
                               {"action": "purge_site", "moduleId": str(CRM), "siteId": str(SITE)}),
    "deprovision_crm": sqs("deprovision_crm", {"action": "deprovision", "moduleId": str(CRM)}),
    "malformed_dropped": sqs("malformed_dropped", {"moduleId": "not-a-uuid"}),
}


def main() -> None:
    for folder, events in (("install", INSTALL), ("provision", PROVISION)):
        for name, event in events.items():
            (ROOT / folder / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
