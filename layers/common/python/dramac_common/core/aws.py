"""AWS clients, made one at a time from one session.

boto3's default session is shared by every thread and is not safe while it creates clients: two
threads creating their first SQS and KMS clients at the same moment can leave one of them without
credentials for the rest of the container's life. Clients themselves are thread-safe once made, so
each capability keeps its own ``LazyClient``, and all of them are created here, under one lock, from
one session that keeps the service models it has loaded (S3's alone takes over half a second to load;
a test emulation that resets boto3's default session would otherwise load it again every time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()  # a LazyClient makes its client through client(), under the same lock
_session: Any = None
_lazy_clients: list[LazyClient] = []


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


class LazyClient:
    """A capability's client, made on its first use (with ``options()``, read from the settings then)
    and kept for the container's life; calling it returns the client."""

    def __init__(self, service: str, options: Callable[[], dict[str, Any]],
                 on_reset: Callable[[], None] | None = None):
        self._service = service
        self._options = options
        self._on_reset = on_reset  # forgets what was learnt through the client (queue URLs)
        self._client: Any = None
        with _lock:
            _lazy_clients.append(self)

    def __call__(self) -> Any:
        made = self._client
        if made is None:
            with _lock:
                if self._client is None:
                    self._client = client(self._service, **self._options())
                made = self._client
        return made

    def reset(self) -> None:
        self._client = None
        if self._on_reset is not None:
            self._on_reset()


def reset_clients() -> None:
    """Forget every capability's client (tests and the local stack change endpoints or start an emulation)."""
    with _lock:
        for lazy in _lazy_clients:
            lazy.reset()
