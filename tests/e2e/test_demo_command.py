"""``dramac demo`` as a user runs it: against a stack started with ``DATABASE_URL`` it uses that stack's
database without being told, and where it cannot know the database it says so in one sentence, with
no traceback and no database created anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest


def run_demo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dramac_dev.cli", "demo", *args], env=env, capture_output=True,
                          text=True, timeout=180)


def environment(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# A scratch database another test makes meanwhile (localdb.create_database: prefix and 10 hex digits)
SCRATCH = re.compile(r"dramac_[a-z]+_[0-9a-f]{10}")


def databases(server_url: str) -> set[str]:
    """The server's databases but the scratch ones tests and benchmarks create and drop concurrently
    (a demo never makes one of those: the local stack's database has a fixed name)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database") if not SCRATCH.fullmatch(r[0])}


def test_demo_uses_the_database_the_stack_was_started_with(local_stack) -> None:
    """The stack runs on the test run's DATABASE_URL; the demo is started without one."""
    done = run_demo("--url", local_stack.url, env=environment(DATABASE_URL=None))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo completed" in done.stdout and "Traceback" not in done.stderr


def test_demo_refuses_in_one_sentence_when_the_stacks_database_is_unknown(local_stack, server_url: str,
                                                                         tmp_path: Path) -> None:
    """A stack this checkout did not start (no state file here) and no DATABASE_URL: refuse, touch nothing."""
    before = databases(server_url)
    done = run_demo("--url", local_stack.url, env=environment(DATABASE_URL=None, DRAMAC_STATE_DIR=str(tmp_path)))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"demo failed: the stack at {local_stack.url} was not started from this checkout, so its database is "
        "unknown: pass --database-url with the DATABASE_URL it was started with"]
    assert databases(server_url) == before
    assert list(tmp_path.iterdir()) == []  # no embedded server started there either


def test_demo_refuses_a_database_that_is_not_the_stacks(local_stack, server_url: str, tmp_path: Path) -> None:
    before = databases(server_url)
    done = run_demo("--url", local_stack.url, "--database-url", server_url,
                    env=environment(DATABASE_URL=None, DRAMAC_STATE_DIR=str(tmp_path)))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "demo failed: the database given is not the stack's: it is not migrated and seeded "
        "(pass the DATABASE_URL the stack was started with)"]
    assert databases(server_url) == before


def test_demo_refuses_a_database_url_that_contradicts_the_running_stack(local_stack, server_url: str) -> None:
    done = run_demo("--url", local_stack.url, "--database-url", server_url, env=environment())
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("demo failed: --database-url is not the database of the stack at")


@pytest.mark.parametrize("unreachable", ["postgresql://nobody@127.0.0.1:9/none"])
def test_demo_says_why_it_cannot_reach_the_database(local_stack, tmp_path: Path, unreachable: str) -> None:
    done = run_demo("--url", local_stack.url, "--database-url", unreachable,
                    env=environment(DATABASE_URL=None, DRAMAC_STATE_DIR=str(tmp_path)))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("demo failed: cannot use the stack's database: ")
