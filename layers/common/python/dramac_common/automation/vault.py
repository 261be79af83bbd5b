"""Secrets of the automation engine: envelope encryption at rest, and redaction everywhere else.

Envelope encryption: each save asks KMS for a fresh 256-bit data key (``GenerateDataKey``, the key
``AUTOMATION_KMS_KEY_ID``), encrypts the values with AES-256-GCM under it, and keeps only the data key
as KMS wrapped it. Reading a value back needs ``kms:Decrypt`` on that key, which only the workflow
worker's role holds (infra). The KMS encryption context and the GCM associated data name the site, so
an envelope copied into another site's row does not open.

Redaction: while a step runs with secrets, ``redacting(values)`` makes every log record of the process
(the layer's, httpx's, anyone's) replace those values with ``[redacted]``; ``redact`` does the same to
the step's input, output and error before they are written to the step log or the execution.
"""

from __future__ import annotations

import base64
import contextvars
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core import aws
from ..core.errors import ServiceUnavailable
from ..core.settings import get_settings

MASK = "********"  # what every route answers in place of a secret value
REDACTED = "[redacted]"  # what logs, step logs and executions hold in place of a secret value
ENVELOPE_VERSION = 1

kms_client = aws.LazyClient("kms", lambda: {"region_name": get_settings().aws_region,
                                            "endpoint_url": get_settings().kms_endpoint_url})
reset_client = kms_client.reset  # tests and the local stack change endpoints


class SecretsUnavailable(ServiceUnavailable):
    """No KMS key configured, or KMS refused: nothing is stored in clear instead."""

    code = "secrets_unavailable"


class EnvelopeUnreadable(Exception):
    """An envelope that does not open (another site's, a deleted key, tampered ciphertext)."""


def _context(site_id: Any) -> dict[str, str]:
    return {"dramac:purpose": "automation-secret", "dramac:site": str(site_id)}


def _aad(site_id: Any) -> bytes:
    return f"dramac:automation-secret:{site_id}".encode()


class Sealer:
    """Encrypts any number of values of one site under one data key (one KMS call per save)."""

    def __init__(self, site_id: Any):
        self.site_id = site_id
        self._key: bytes | None = None
        self._wrapped = ""
        self._key_id = ""

    def _data_key(self) -> bytes:
        if self._key is None:
            key_id = get_settings().automation_kms_key_id
            if not key_id:
                raise SecretsUnavailable("Secrets cannot be stored: AUTOMATION_KMS_KEY_ID is not configured")
            try:
                reply = kms_client().generate_data_key(KeyId=key_id, KeySpec="AES_256",
                                                       EncryptionContext=_context(self.site_id))
            except Exception as exc:  # KMS's refusal or outage: refuse to store rather than store in clear
                logging.getLogger(__name__).warning("KMS GenerateDataKey failed: %s", type(exc).__name__)
                raise SecretsUnavailable("Secrets cannot be stored right now: the key service refused") from exc
            self._key = reply["Plaintext"]
            self._wrapped = base64.b64encode(reply["CiphertextBlob"]).decode()
            self._key_id = reply.get("KeyId", key_id)
        return self._key

    def seal(self, value: Any) -> dict[str, Any]:
        """An envelope holding ``value`` (any JSON value)."""
        import json

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        ciphertext = AESGCM(self._data_key()).encrypt(nonce, json.dumps(value).encode(), _aad(self.site_id))
        return {"v": ENVELOPE_VERSION, "keyId": self._key_id, "dataKey": self._wrapped,
                "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}


def open_envelopes(site_id: Any, envelopes: Iterable[dict[str, Any]]) -> list[Any]:
    """The values in these envelopes of one site (one KMS ``Decrypt`` per distinct data key)."""
    import json

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys: dict[str, bytes] = {}
    values = []
    for envelope in envelopes:
        wrapped = envelope.get("dataKey", "") if isinstance(envelope, dict) else ""
        try:
            if wrapped not in keys:
                keys[wrapped] = kms_client().decrypt(CiphertextBlob=base64.b64decode(wrapped),
                                                     EncryptionContext=_context(site_id))["Plaintext"]
            plain = AESGCM(keys[wrapped]).decrypt(base64.b64decode(envelope["nonce"]),
                                                  base64.b64decode(envelope["ciphertext"]), _aad(site_id))
        except (InvalidTag, KeyError, ValueError, TypeError) as exc:
            raise EnvelopeUnreadable("a stored secret does not open on this site") from exc
        except Exception as exc:  # KMS refused (key disabled, wrong context, no permission)
            raise EnvelopeUnreadable(f"the key service refused to open a stored secret ({type(exc).__name__})") from exc
        values.append(json.loads(plain))
    return values


# Redaction -----------------------------------------------------------------------------------------

def secret_strings(values: Iterable[Any]) -> list[str]:
    """The strings to hide, longest first (so a value containing another is hidden whole)."""
    found = {v for v in values if isinstance(v, str) and len(v) >= 3}
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets_: list[str]) -> str:
    for secret in secrets_:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, secrets_: list[str]) -> Any:
    """``value`` (any JSON value) with every occurrence of a secret, in keys and strings, replaced."""
    if not secrets_:
        return value
    if isinstance(value, str):
        return redact_text(value, secrets_)
    if isinstance(value, dict):
        return {redact_text(str(k), secrets_): redact(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets_) for v in value]
    return value


_active: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("dramac_active_secrets", default=())
_factory_lock = threading.Lock()
_factory_installed = False


def _install_record_factory() -> None:
    """Every log record made while secrets are active is redacted as it is made (message, arguments and
    traceback), whichever logger or handler (Powertools, pytest's capture) receives it."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            active = list(_active.get())
            if active:
                text = record.getMessage()
                if record.exc_info:
                    text += "\n" + logging.Formatter().formatException(record.exc_info)
                    record.exc_info, record.exc_text = None, None
                record.msg, record.args = redact_text(text, active), ()
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


@contextmanager
def redacting(values: Iterable[Any]) -> Iterator[list[str]]:
    """Within it, log records of this thread never contain these values; yields the sorted secrets."""
    secrets_ = secret_strings(values)
    if not secrets_:
        yield secrets_
        return
    _install_record_factory()
    token = _active.set(tuple(secret_strings([*_active.get(), *secrets_])))
    try:
        yield secrets_
    finally:
        _active.reset(token)
