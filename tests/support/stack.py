"""The local stack (`dramac dev`) in a subprocess on a free port: what the ``local_stack`` fixture starts
once per test session over the run's database (the e2e tests, and the reliability suite's load test)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalStack:
    url: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def client(self, user: uuid.UUID | None = None) -> httpx.Client:
        from dramac_dev.tokens import issue_token

        headers = {"authorization": f"Bearer {issue_token(user)}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)




@contextmanager
def started_stack(database_url: str) -> Iterator[LocalStack]:
    """``dramac dev`` on a free port, until it prints ready; stopped when the scope ends."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dramac_dev.cli", "dev", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    stack = LocalStack(url=f"http://127.0.0.1:{port}", process=process)
    ready = threading.Event()

    def pump() -> None:
        for line in process.stdout:
            stack.output.append(line.rstrip())
            if line.startswith(f"ready http://127.0.0.1:{port}"):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 120
    while not ready.is_set() and process.poll() is None and time.monotonic() < deadline:
        ready.wait(0.2)
    if not ready.is_set():
        process.kill()
        pytest.fail("dramac dev did not print 'ready':\n" + "\n".join(stack.output[-40:]))
    try:
        yield stack
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
