"""AWS clients, made one at a time from one session.

boto3's default session is shared by every thread and is not safe while it creates clients: two
threads creating their first SQS and KMS clients at the same moment can leave one of them without
credentials for the rest of the container's life. Clients themselves are thread-safe once made, so
each capability caches its own, and all of them are created here, under one lock, from one session
that keeps the service models it has loaded (S3's alone takes over half a second to load; a test
emulation that resets boto3's default session would otherwise load it again every time).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_session: Any = None


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` (``endpoint_url``, ``region_name`` as boto3 takes them)."""
    global _session
    import boto3  # lazily: boto3 costs ~100 ms of import

    with _lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, **kwargs)


def reset_session() -> None:
    """Forget the session (and so its handlers): a caller that starts an in-process AWS emulation
    (moto's ``mock_aws``) after clients were made needs a session created under the emulation."""
    global _session
    with _lock:
        _session = None
