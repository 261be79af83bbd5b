"""Path rules: normalising request paths, public-path matching and safe redirect targets."""

import re
import string

from .cloudfront import RouteRejected

MAX_URI_LENGTH = 8192  # CloudFront's own limit on the request URI
MAX_REDIRECT_TARGET_LENGTH = 2048

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# Already-normal paths (the common case) skip the decoding pass: no escapes,
# no empty or dot-leading segments, only RFC 3986 path characters.
_NORMAL_PATH = re.compile(r"(?:/(?!\.)[A-Za-z0-9\-._~!$&'()*+,;=:@]+)*/?")
_FORBIDDEN_RAW = re.compile(r"[\x00-\x20\x7f\\]|[^\x00-\x7f]")
_UNSAFE_DECODED = re.compile(r"[\x00-\x1f\x7f\\]")  # after decoding: control characters and backslashes
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_ENCODED = tuple(chr(b) if chr(b) in _UNRESERVED else f"%{b:02X}" for b in range(256))
_PERCENT_ENCODED_ASCII = {b: f"%{b:02X}" for b in range(128) if chr(b) not in _UNRESERVED}


def normalise_path(uri: object) -> str:
    """The canonical form of a request path, or RouteRejected(400) when it tries to escape.

    Percent-escapes of unreserved characters are decoded once (so `%2e%2e` is
    seen as `..`); encoded slashes and backslashes, raw backslashes, control
    characters and `..` segments are refused; empty and `.` segments are dropped.
    Whatever comes out cannot climb above the prefix it is appended to.
    """
    if not isinstance(uri, str) or not uri.startswith("/") or len(uri) > MAX_URI_LENGTH:
        raise RouteRejected(400)
    if _NORMAL_PATH.fullmatch(uri):
        return uri
    if _FORBIDDEN_RAW.search(uri) or _STRAY_PERCENT.search(uri):
        raise RouteRejected(400)
    decoded = _ESCAPE.sub(_decode_escape, uri)
    raw_segments = decoded.split("/")[1:]
    segments = []
    for segment in raw_segments:
        if segment in ("", "."):
            continue
        if segment == ".." or segment.startswith("..;"):  # `..;` is `..` to some servlet-style origins
            raise RouteRejected(400)
        segments.append(segment)
    path = "/" + "/".join(segments)
    if segments and raw_segments[-1] in ("", "."):
        path += "/"
    return path


def _decode_escape(match: re.Match) -> str:
    value = int(match.group(1), 16)
    char = chr(value)
    if char in _UNRESERVED:
        return char
    if value < 0x20 or value == 0x7F or char in "/\\":
        raise RouteRejected(400)
    return "%" + match.group(1).upper()


def is_under(path: str, prefix: str) -> bool:
    """Segment-aware prefix match: `/login/x` is under `/login`, `/loginx` is not."""
    return path == prefix or path.startswith(prefix + "/")


def is_public_path(path: str, config) -> bool:
    """Paths the app serves without a session (auth pages, sites, API, static assets): a listed file or
    a path under a listed prefix. Never by how a path ends: `/dashboard;.js` and
    `/dashboard/settings/billing.css` are the dashboard to origins that ignore `;...` or serve the
    page for any sub-path, so a suffix rule would hand private pages to anyone."""
    return path in config.public_files or config.public_prefix_pattern.match(path) is not None


def prefix_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """One precompiled matcher for `is_under(path, p)` over every prefix: a prefix, then `/` or the end."""
    if not prefixes:
        return re.compile(r"(?!)")
    return re.compile("(?:" + "|".join(re.escape(prefix) for prefix in prefixes) + r")(?:/|\Z)")


def is_same_site_path(value: object) -> bool:
    """True for a relative path on this site that no browser can read as another origin.

    Refuses `//host`, `/\\host`, absolute URLs, whitespace, control and
    non-ASCII characters, both as written and after one percent-decoding.
    """
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_REDIRECT_TARGET_LENGTH:
        return False
    if _FORBIDDEN_RAW.search(value) or value.startswith("//"):
        return False
    if "%" not in value:  # nothing to decode: the raw checks above were the decoded ones
        return True
    decoded = _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)
    return not (_UNSAFE_DECODED.search(decoded) or decoded.startswith("//"))


def safe_redirect_path(candidate: object, fallback: str = "/") -> str:
    return candidate if isinstance(candidate, str) and is_same_site_path(candidate) else fallback


def login_location(login_path: str, path: str, querystring: object) -> str:
    """`/login?redirectTo=<path and query>`, the target always a same-site relative path."""
    target = f"{path}?{querystring}" if isinstance(querystring, str) and querystring else path
    if not is_same_site_path(target):
        target = path if target is not path and is_same_site_path(path) else "/"
    return f"{login_path}?redirectTo={percent_encode(target)}"


def percent_encode(value: str) -> str:
    """Encode everything but unreserved characters (like `encodeURIComponent`, stricter)."""
    if value.isascii():  # always so for a checked redirect target: one translate in C
        return value.translate(_PERCENT_ENCODED_ASCII)
    return "".join(_PERCENT_ENCODED[byte] for byte in value.encode("utf-8", "surrogatepass"))
