"""The signed-in user: the session cookie and what its claims say about onboarding."""

from .cloudfront import header_values

MAX_COOKIE_HEADER_LENGTH = 32768


def session_token(request: dict, cookie_name: str) -> str | None:
    """The first value of the session cookie across all `Cookie` header entries."""
    for cookie_header in header_values(request, "cookie"):
        if len(cookie_header) > MAX_COOKIE_HEADER_LENGTH:
            continue
        for pair in cookie_header.split(";"):
            name, separator, value = pair.partition("=")
            if separator and name.strip() == cookie_name:
                return value.strip().strip('"') or None
    return None


def onboarding_finished(claims: dict, claim_paths: tuple) -> bool:
    """False only when the first of the claims present is exactly `false`.

    A token without any onboarding claim (a `dramac token` dev token, an older
    session) counts as finished: the redirect is a convenience, not access control.
    """
    for path in claim_paths:
        value: object = claims
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return value is not False
    return True
