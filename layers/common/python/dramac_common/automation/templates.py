"""Templates in step configs: ``{{event.payload.x}}``, ``{{steps.<position>.output.y}}``, ``{{variables.z}}``.

A template may appear in any string value of a config (nested objects and lists included). A string
that is exactly one template keeps the referenced value's JSON type (``"{{event.payload.score}}"``
renders the number 72); a template inside a longer string is interpolated as text (objects and
lists as JSON, a missing value as the empty string). Paths are dotted; list items are addressed by
index (``event.payload.items.0.sku``).

Roots: ``event`` (``id``, ``type``, ``siteId``, ``payload``), ``steps`` (``<position>.output`` of an
earlier step), ``variables`` (the workflow's variables), ``execution`` (``id``), ``workflow`` (``id``),
``connections`` (``<name>.<field>`` of a connection of the site: opened only when the step runs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

TEMPLATE_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*\Z")
ROOTS = ("event", "steps", "variables", "execution", "workflow", "connections")
EVENT_FIELDS = ("id", "type", "siteId", "payload", "createdAt")

_MISSING = object()


class TemplateError(ValueError):
    """A template that cannot be valid in any execution (unknown root, malformed path, later step)."""


def iter_strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its location (``body.contact.email``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{where}.{index}" if where else str(index))


def template_paths(text: str) -> list[str]:
    return [m.group(1) for m in TEMPLATE_RE.finditer(text)]


def validate_path(path: str, *, position: int | None = None) -> None:
    """Refuse a path that can never resolve. ``position`` is the referring step's: steps may only
    read the outputs of steps before them."""
    if not PATH_RE.match(path):
        raise TemplateError(f"malformed template path {path!r}")
    parts = path.split(".")
    root = parts[0]
    if root not in ROOTS:
        raise TemplateError(f"unknown template root {root!r} in {path!r}: use one of {', '.join(ROOTS)}")
    if root == "event" and len(parts) > 1 and parts[1] not in EVENT_FIELDS:
        raise TemplateError(f"unknown event field {parts[1]!r} in {path!r}: use one of {', '.join(EVENT_FIELDS)}")
    if root == "steps":
        if len(parts) < 3 or not parts[1].isdigit() or parts[2] != "output":
            raise TemplateError(f"step templates read '{{{{steps.<position>.output...}}}}', got {path!r}")
        if position is not None and int(parts[1]) >= position:
            raise TemplateError(f"{path!r} refers to step {parts[1]}, which does not run before step {position}")
    if root == "connections" and len(parts) != 3:
        raise TemplateError(f"connection templates read '{{{{connections.<name>.<field>}}}}', got {path!r}")
    if root == "variables" and len(parts) < 2:
        raise TemplateError(f"name the variable: '{{{{variables.<name>}}}}', got {path!r}")


def validate_templates(value: Any, *, position: int | None = None) -> list[dict[str, str]]:
    """Problems with the templates in a config, as ``[{"field", "message"}]`` (empty when valid)."""
    problems = []
    for where, text in iter_strings(value):
        if text.count("{{") != text.count("}}"):
            problems.append({"field": where, "message": "unbalanced '{{' and '}}'"})
            continue
        for path in template_paths(text):
            try:
                validate_path(path, position=position)
            except TemplateError as exc:
                problems.append({"field": where, "message": str(exc)})
    return problems


def resolve(path: str, context: dict[str, Any], default: Any = None) -> Any:
    """The value at a dotted path of the template context, or ``default`` when any part is missing."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = _MISSING
        if value is _MISSING:
            return default
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def render_string(text: str, context: dict[str, Any]) -> Any:
    whole = TEMPLATE_RE.fullmatch(text.strip()) if "{{" in text else None
    if whole:
        return resolve(whole.group(1), context)
    if "{{" not in text:
        return text
    return TEMPLATE_RE.sub(lambda m: _as_text(resolve(m.group(1), context)), text)


def render(value: Any, context: dict[str, Any]) -> Any:
    """A config with every template replaced; the input is not modified."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value
