"""EM-05 naming: short ids, schema and table names."""

import uuid

import pytest
from dramac_common.core.naming import (
    NamingError,
    generate_module_short_id,
    get_module_schema_name,
    get_module_table_name,
    module_table_identifier,
    validate_identifier,
)
from psycopg import sql

MODULE_ID = "3F2A9C1E-5B7D-4E8F-9A0B-1C2D3E4F5A6B"


def test_short_id_is_first_eight_hex_of_the_uuid_lower_cased():
    assert generate_module_short_id(MODULE_ID) == "3f2a9c1e"
    assert generate_module_short_id(uuid.UUID(MODULE_ID)) == "3f2a9c1e"


def test_schema_name_is_mod_and_short_id_from_uuid_or_short_id():
    assert get_module_schema_name(MODULE_ID) == "mod_3f2a9c1e"
    assert get_module_schema_name("3f2a9c1e") == "mod_3f2a9c1e"


@pytest.mark.parametrize("bad", ["", "crm", "3f2a9c1", "not-a-uuid", "3f2a9c1e; drop schema public", None, 42])
def test_schema_name_refuses_anything_but_a_uuid_or_short_id(bad):
    with pytest.raises(NamingError):
        get_module_schema_name(bad)


def test_table_name_is_schema_qualified():
    assert get_module_table_name(MODULE_ID, "contacts") == "mod_3f2a9c1e.contacts"


def test_table_identifier_is_quoted_by_psycopg():
    ident = module_table_identifier(MODULE_ID, "contacts")
    assert isinstance(ident, sql.Identifier)
    assert ident.as_string(None) == '"mod_3f2a9c1e"."contacts"'


@pytest.mark.parametrize(
    "bad", ["Contacts", "1abc", "a-b", 'x"; drop table y; --', "a" * 64, "", "naïve", "a b"]
)
def test_identifier_validation_refuses_unsafe_names(bad):
    with pytest.raises(NamingError):
        validate_identifier(bad)


def test_identifier_validation_accepts_63_character_lower_case_names():
    assert validate_identifier("a" * 63) == "a" * 63
    assert validate_identifier("lead_score_2") == "lead_score_2"
