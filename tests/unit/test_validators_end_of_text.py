"""Allow-list validators end at the end of the text: in Python's ``re``, ``$`` also matches before a final
newline, so a name, slug, version or event type with a trailing newline passed every check that ended
in ``$`` (and became, quoted, a table or column whose name ends in a newline)."""

import pytest
from dramac_common.automation import registry, templates
from dramac_common.core import naming
from dramac_common.core.errors import ValidationFailed
from dramac_common.module_data import query
from dramac_common.provisioning import manifest


def test_identifier_with_a_trailing_newline_is_refused():
    assert naming.validate_identifier("contacts") == "contacts"
    with pytest.raises(naming.NamingError):
        naming.validate_identifier("contacts\n")


def test_schema_and_short_id_patterns_end_at_the_end_of_the_text():
    assert naming.SCHEMA_RE.match("mod_0123abcd")
    assert not naming.SCHEMA_RE.match("mod_0123abcd\n")
    assert not naming.SHORT_ID_RE.match("0123abcd\n")


def test_event_type_with_a_trailing_newline_is_refused():
    assert registry.validate_event_type("crm.contact.created") == "crm.contact.created"
    with pytest.raises(ValidationFailed):
        registry.validate_event_type("crm.contact.created\n")


def test_version_and_slug_with_a_trailing_newline_are_refused():
    assert manifest.parse_version("1.2.3") == (1, 2, 3)
    with pytest.raises(Exception):  # noqa: B017 - whatever parse_version raises for a malformed version
        manifest.parse_version("1.2.3\n")
    assert manifest.SLUG_RE.match("crm")
    assert not manifest.SLUG_RE.match("crm\n")


def test_query_column_and_template_path_with_a_trailing_newline_are_refused():
    assert query._column_name("email")
    assert not query._column_name("email\n")
    with pytest.raises(templates.TemplateError):
        templates.validate_path("trigger.payload.email\n")
