"""docs/roles.md and the code agree: every route has its row, and the rules the table states are the
ones ``core.tenancy.MATRIX`` holds."""

from __future__ import annotations

import re
from pathlib import Path

from dramac_common.core.tenancy import MATRIX, Action, Role, allows, client_access, require_module_data_role

from dramac_dev.routes import ROUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ROW = re.compile(r"^\| `(GET|HEAD|POST|PUT|PATCH|DELETE) (/api/[^`]*)`")


def documented_routes() -> set[str]:
    return {f"{m.group(1)} {m.group(2)}" for line in DOC.read_text().splitlines() if (m := ROW.match(line))}


def test_every_route_has_a_row_in_the_role_matrix():
    missing = sorted(r.route_key for r in ROUTES if r.route_key not in documented_routes())
    assert not missing, f"add these routes to docs/roles.md (and pick their tenancy.Action): {missing}"


def test_the_matrix_rows_are_well_formed():
    rows = [line for line in DOC.read_text().splitlines() if ROW.match(line)]
    assert len(rows) == len(documented_routes()), "a route has two rows in docs/roles.md"
    assert all(line.count("|") == 7 for line in rows), "every row has the route and five role cells"


def test_billing_and_people_are_the_owners():
    for action in (Action.BILL, Action.MANAGE_MEMBERS):
        assert {r for r in Role if allows(r, action)} == {Role.SUPER_ADMIN, Role.OWNER}


def test_admins_operate_members_do_not():
    assert allows(Role.ADMIN, Action.OPERATE) and not allows(Role.MEMBER, Action.OPERATE)


def test_client_users_reach_module_data_only():
    assert {a for a in Action if allows(Role.CLIENT, a)} == {Action.READ_MODULE_DATA, Action.WRITE_MODULE_DATA}


def test_super_admins_read_but_never_write_module_data():
    assert allows(Role.SUPER_ADMIN, Action.READ_MODULE_DATA)
    assert not allows(Role.SUPER_ADMIN, Action.WRITE_MODULE_DATA)


def test_every_action_has_a_rule():
    assert set(MATRIX) == set(Action)


def test_client_access_defaults_to_read_and_ignores_unknown_values():
    assert [client_access(m) for m in (None, {}, {"clientAccess": "write"}, {"clientAccess": "all"})] == \
        ["read", "read", "write", "read"]


def test_a_client_user_writes_only_where_the_manifest_allows():
    import pytest
    from dramac_common.core.errors import Forbidden, NotFound

    require_module_data_role("client", {"clientAccess": "write"}, write=True)
    require_module_data_role("client", {}, write=False)
    with pytest.raises(Forbidden):
        require_module_data_role("client", {}, write=True)
    with pytest.raises(NotFound):
        require_module_data_role("client", {"clientAccess": "none"}, write=False)
    with pytest.raises(Forbidden):
        require_module_data_role("super_admin", {}, write=True)
    require_module_data_role(None, {"clientAccess": "none"}, write=True)  # a site API key: its key scope decides
