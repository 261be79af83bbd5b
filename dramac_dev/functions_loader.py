"""Loads a function's real Lambda handler from ``functions/<name>/app.py``.

Every function folder has its own ``app.py`` (the Lambda entry point), so each is loaded under a
unique module name. What an ``app.py`` imports is installed in the project's environment: the layer
(``dramac_common``) and the domain router's package (``edge_router``, which Lambda@Edge finds beside
``app.py`` in the bundle).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .localdb import project_root

_loaded: dict[str, ModuleType] = {}


def functions_dir() -> Path:
    return project_root() / "functions"


def available_functions() -> list[str]:
    return sorted(p.parent.name for p in functions_dir().glob("*/app.py"))


def load_function(name: str) -> ModuleType:
    if name in _loaded:
        return _loaded[name]
    path = functions_dir() / name / "app.py"
    if not path.is_file():
        raise KeyError(f"no function {name!r}: expected {path} (known: {', '.join(available_functions())})")
    spec = importlib.util.spec_from_file_location(f"dramac_fn_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _loaded[name] = module
    return module


def get_handler(name: str) -> Any:
    return load_function(name).handler
