"""Starting ``dramac dev`` in a subprocess and waiting for its ``ready`` line (``dramac demo`` when no
stack answers, and the tests' session stack)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time


class StackDidNotStart(RuntimeError):
    """``dramac dev`` exited or stayed silent; the message ends with its last output lines."""


def spawn_dev(host: str, port: int, *, env: dict[str, str] | None = None, timeout_s: float = 120,
              output: list[str] | None = None, new_session: bool = False) -> tuple[subprocess.Popen[str], str]:
    """``dramac dev --host HOST --port PORT`` with this interpreter, once it printed ``ready``; returns
    the process and the URL it announced (``port`` 0: a port the stack bound itself). Its output lines
    keep arriving in ``output`` (the last 200). ``new_session``: out of the caller's process group
    (Ctrl-C at the terminal does not reach it; the caller stops it)."""
    lines = output if output is not None else []
    process = subprocess.Popen(  # noqa: S603 - this interpreter running dramac dev
        [sys.executable, "-m", "dramac_dev.cli", "dev", "--host", host, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=new_session,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
    ready = threading.Event()
    announced: list[str] = []

    def pump() -> None:
        for line in process.stdout or ():
            lines.append(line.rstrip())
            del lines[:-200]
            if line.startswith("ready ") and not ready.is_set():
                announced.append(line.split()[1])
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while not ready.is_set() and process.poll() is None and time.monotonic() < deadline:
        ready.wait(0.2)
    if not ready.is_set():
        process.kill()
        reader.join(5)  # its last lines (the reason it exited) may still be in the pipe
        raise StackDidNotStart("dramac dev did not print 'ready':\n" + "\n".join(lines[-40:]))
    return process, announced[0]
