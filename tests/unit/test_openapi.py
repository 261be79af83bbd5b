"""The merged OpenAPI document (docs/openapi.json): current, complete, and true to the route table.

Generic over functions/ and dramac_dev/routes.py: a new route or function is checked without an edit
here, and a stale document fails with the command that regenerates it."""

from __future__ import annotations

import json
import re

import pytest

from dramac_dev import routes
from dramac_dev.functions_loader import available_functions
from dramac_dev.localdb import project_root
from dramac_dev.openapi import DOCUMENT, SECURITY, merged_document, render


@pytest.fixture(scope="module")
def document() -> dict:
    return merged_document()


def shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_the_checked_in_document_is_current(document):
    checked_in = (project_root() / DOCUMENT).read_text(encoding="utf-8")
    assert checked_in == render(document), (
        "docs/openapi.json is stale (a route, model or function changed): run `make openapi` and commit it")


def test_every_deployed_route_has_its_operation_with_the_route_tables_security(document):
    present = set(available_functions())
    deployed = [r for r in routes.ROUTES if r.function in present]
    assert deployed, "no route has its function on this branch: the check would pass vacuously"
    operations = {(shape(path), method.upper()): op for path, ops in document["paths"].items()
                  for method, op in ops.items()}
    assert len(operations) == len(deployed), "the document has operations no route gives API Gateway"
    for route in deployed:
        operation = operations.get((shape(route.path), route.method))
        assert operation is not None, f"{route.route_key}: no operation in docs/openapi.json"
        assert operation["tags"] == [route.function]
        assert operation["security"] == SECURITY[route.auth], route.route_key


def test_the_document_is_openapi_3_1_and_every_reference_resolves(document):
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, f"unresolved $ref {ref}"
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique across functions"


def test_schemathesis_reads_every_operation(document):
    import schemathesis

    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in document["paths"].values())
