"""The container's connection pool ends with its process: a dramac command or a benchmark's probe that
used the database closes it at exit (on Python 3.13 an open pool's threads held the exit 5 s each)."""

from __future__ import annotations

import os
import subprocess
import sys

EXITING = """
import atexit
from dramac_common.core import db

atexit.register(lambda: print("closed" if db._pool is None else "open"))  # runs last: registered first
with db.service_unit() as unit:
    unit.execute("SELECT 1")
"""


def test_a_process_that_used_the_pool_closes_it_at_exit(database_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", EXITING], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DATABASE_URL": database_url}, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "closed"), done.stderr
    assert "couldn't stop thread" not in done.stderr
