"""EM-05 naming: module short ids, schema names and qualified table names, validated."""

from __future__ import annotations

import re
import uuid

from psycopg import sql

SHORT_ID_RE = re.compile(r"^[a-f0-9]{8}\Z")
SCHEMA_RE = re.compile(r"^mod_[a-f0-9]{8}\Z")
# Lower-case SQL identifier that needs no quoting; 63 bytes is PostgreSQL's NAMEDATALEN - 1.
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
# A module's slug in JSON Schema and pydantic (their "$" is the end of the text); in Python, "$" also
# matches before a final newline, so the compiled form ends with "\Z"
SLUG_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
SLUG_RE = re.compile(SLUG_PATTERN.removesuffix("$") + r"\Z")


class NamingError(ValueError):
    """A module id, schema or table name that does not follow EM-05."""


def generate_module_short_id(module_id: str | uuid.UUID) -> str:
    """First 8 hex characters of the module's UUID: ``'3f2a9c1e-...'`` → ``'3f2a9c1e'``."""
    try:
        value = module_id if isinstance(module_id, uuid.UUID) else uuid.UUID(str(module_id))
    except (ValueError, AttributeError, TypeError) as exc:
        raise NamingError(f"not a module UUID: {module_id!r}") from exc
    return value.hex[:8]


def get_module_schema_name(module_id_or_short_id: str | uuid.UUID) -> str:
    """``mod_<short id>`` for a module UUID or an 8-hex short id."""
    text = str(module_id_or_short_id)
    short_id = text if SHORT_ID_RE.match(text) else generate_module_short_id(text)
    return f"mod_{short_id}"


def validate_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise NamingError(
            f"invalid {what} {name!r}: use lower-case letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return name


def get_module_table_name(module_id_or_short_id: str | uuid.UUID, table: str) -> str:
    """The qualified name as text, e.g. ``mod_3f2a9c1e.contacts`` (for display and logs)."""
    return f"{get_module_schema_name(module_id_or_short_id)}.{validate_identifier(table, 'table name')}"


def module_table_identifier(module_id_or_short_id: str | uuid.UUID, table: str) -> sql.Identifier:
    """The qualified name as a ``psycopg.sql.Identifier``: the only way a module table enters SQL."""
    return sql.Identifier(get_module_schema_name(module_id_or_short_id), validate_identifier(table, "table name"))
