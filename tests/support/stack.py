"""The local stack (`dramac dev`) in a subprocess on a free port: what the ``local_stack`` fixture starts
once per test session over the run's database (the e2e tests, and the reliability suite's load test)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest


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
    """``dramac dev --port 0`` (it binds a free port itself and announces it), until it prints ready;
    stopped when the scope ends."""
    from dramac_dev.spawn import StackDidNotStart, spawn_dev

    output: list[str] = []
    try:
        process, url = spawn_dev("127.0.0.1", 0, env={"DATABASE_URL": database_url}, output=output,
                                 new_session=True)
    except StackDidNotStart as exc:
        pytest.fail(str(exc))
    stack = LocalStack(url=url, process=process, output=output)
    try:
        yield stack
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
