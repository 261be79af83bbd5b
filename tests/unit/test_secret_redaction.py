"""Redaction of secret values: in JSON values written to step logs, and in every log record made while
a step runs with secrets (message, arguments and traceback), whatever logger makes it."""

from __future__ import annotations

import logging

from dramac_common.automation import vault


def test_redact_replaces_secrets_in_nested_values_and_keys():
    value = {"a": ["x token-123 y", {"token-123": 5}], "b": 7, "c": None}
    assert vault.redact(value, vault.secret_strings(["token-123"])) == {
        "a": ["x [redacted] y", {"[redacted]": 5}], "b": 7, "c": None}


def test_a_secret_containing_another_is_hidden_whole():
    hidden = vault.secret_strings(["abc", "Bearer abcdef"])
    assert vault.redact_text("Authorization: Bearer abcdef", hidden) == "Authorization: [redacted]"


def test_log_records_made_while_redacting_hide_the_secret_even_in_tracebacks(caplog):
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.library")
    with vault.redacting(["s3cr3t-value"]):
        log.info("calling https://x.test/?key=%s", "s3cr3t-value")
        try:
            raise ValueError("refused s3cr3t-value")
        except ValueError:
            log.exception("failed")
    log.info("after: s3cr3t-value is no longer a secret here")
    assert "?key=[redacted]" in caplog.text and "ValueError: refused [redacted]" in caplog.text
    assert caplog.text.count("s3cr3t-value") == 1  # only the line logged after the block


def test_short_strings_are_not_treated_as_secrets():
    assert vault.secret_strings(["", "ab", None, "abc"]) == ["abc"]
