"""Where a running ``dramac dev`` tells other commands of this checkout about itself.

``dramac dev`` writes ``.dramac/stacks/<port>.json`` (its URL, process id, database URL and SQS endpoint, readable by
this user only) before it announces ``ready``, and removes it when it stops. ``dramac demo`` reads it to
use the stack's own database, whatever ``DATABASE_URL`` the demo itself was started with; ``dramac dlq
--port`` its SQS endpoint. A file whose
process is gone is stale and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .localdb import state_dir


@dataclass(frozen=True)
class StackState:
    url: str
    pid: int
    database_url: str
    sqs_endpoint: str | None = None


def state_path(port: int) -> Path:
    return state_dir() / "stacks" / f"{int(port)}.json"


def write_state(port: int, url: str, database_url: str, sqs_endpoint: str | None = None) -> Path:
    path = state_path(port)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a database URL
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"url": url, "pid": os.getpid(), "databaseUrl": database_url, "sqsEndpoint": sqs_endpoint}, out)
    temporary.replace(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(port: int) -> StackState | None:
    """The stack serving on ``port`` from this checkout, or None (no file, unreadable, or stale)."""
    try:
        raw = json.loads(state_path(port).read_text(encoding="utf-8"))
        state = StackState(url=str(raw["url"]), pid=int(raw["pid"]), database_url=str(raw["databaseUrl"]),
                           sqs_endpoint=str(raw["sqsEndpoint"]) if raw.get("sqsEndpoint") else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _alive(state.pid) else None


def remove_state(port: int) -> None:
    """Remove the file if this process wrote it (a newer stack on the same port keeps its own)."""
    state = read_state(port)
    if state is not None and state.pid == os.getpid():
        state_path(port).unlink(missing_ok=True)
