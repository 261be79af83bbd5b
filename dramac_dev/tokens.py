"""Development JWTs: HS256 tokens shaped like Supabase's, accepted by the local stack only."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from dramac_common.settings import DEV_JWT_ISSUER, JWT_AUDIENCE, get_settings


def issue_token(user_id: uuid.UUID | str, *, ttl: int = 3600, extra: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    claims = {
        "sub": str(uuid.UUID(str(user_id))),
        "aud": JWT_AUDIENCE,
        "iss": DEV_JWT_ISSUER,
        "role": "authenticated",
        "iat": now,
        "exp": now + int(ttl),
        **(extra or {}),
    }
    return jwt.encode(claims, get_settings().jwt_secret, algorithm="HS256")


def verify_token(token: str) -> dict[str, Any]:
    """The claims of a valid dev token; raises ``jwt.InvalidTokenError`` otherwise."""
    return jwt.decode(
        token,
        get_settings().jwt_secret,
        algorithms=["HS256"],
        audience=JWT_AUDIENCE,
        issuer=DEV_JWT_ISSUER,
        options={"require": ["sub", "exp", "aud"]},
        leeway=30,
    )
