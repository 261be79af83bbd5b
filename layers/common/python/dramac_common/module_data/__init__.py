"""Module data: the site-scoped SDK over each module's own tables (EM-11's ``ModuleDatabaseSDK``),
key-value storage for widget modules, and the PostgREST-style query model of the HTTP API.

    from dramac_common.module_data import ModuleDatabaseSDK

    with db.user_unit(caller.db_claims) as unit:
        crm = ModuleDatabaseSDK.for_request(unit, site_id=site_id, module="crm")
        contact = crm.create_one("contacts", {"email": "ada@example.com"})
        hot = crm.find("contacts", {"lead_score": {"gte": 50}}, order_by="created_at.desc", limit=10)
"""

from .catalog import Column, ModuleSchema, Table
from .gate import ModuleTarget, require_enabled_module
from .query import Filter, Order, Query, filters_from_where, parse_query_params
from .sdk import MAX_BATCH_OPERATIONS, MAX_ROWS_PER_WRITE, ModuleDatabaseSDK, forget_cached_schemas
from .widget import WidgetStorage

__all__ = [
    "MAX_BATCH_OPERATIONS", "MAX_ROWS_PER_WRITE", "Column", "Filter", "ModuleDatabaseSDK", "ModuleSchema",
    "ModuleTarget", "Order", "Query", "Table", "WidgetStorage", "filters_from_where", "forget_cached_schemas",
    "parse_query_params", "require_enabled_module",
]
