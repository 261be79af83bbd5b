"""Command-line tools the infra suite runs: from the project's venv, or from their own tool venvs
(``.venv/tools/<name>``, created by ``make tools`` from ``tools/<name>.txt``) when their pins clash
with the project's."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL_VENVS = ROOT / ".venv" / "tools"


def tool(command: str, venv: str | None = None) -> str:
    """The path of ``command``; fails (never skips) when it is missing: `make test` installs it."""
    if venv is not None:
        path = TOOL_VENVS / venv / "bin" / command
        if path.is_file():
            return str(path)
        hint = f"run `make tools` (installs tools/{venv}.txt into .venv/tools/{venv})"
    else:
        path = Path(sys.executable).parent / command
        if path.is_file():
            return str(path)
        hint = "run `make install` (the test extra of pyproject.toml)"
    found = shutil.which(command)
    if found:
        return found
    raise AssertionError(f"{command} is not installed: {hint}")
