"""Module versions: MAJOR.MINOR.PATCH, compared as numbers.

Apart from ``manifest`` so that comparing versions (is an upgrade available?) does not load the
manifest validator: listing a site's modules compares them on the install function's usual first request.
"""

from __future__ import annotations

import re

VERSION_RE = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\Z")


def parse_version(version: str) -> tuple[int, int, int]:
    m = VERSION_RE.match(version or "")
    if not m:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))
