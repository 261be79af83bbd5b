"""AWS clients, made one at a time.

boto3's default session is shared by every thread and is not safe while it creates clients: two
threads creating their first SQS and KMS clients at the same moment can leave one of them without
credentials for the rest of the container's life. Clients themselves are thread-safe once made, so
each capability caches its own, and all of them are created here, under one lock.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` (``endpoint_url``, ``region_name`` as boto3 takes them)."""
    import boto3  # lazily: boto3 costs ~100 ms of import

    with _lock:
        return boto3.client(service, **kwargs)
