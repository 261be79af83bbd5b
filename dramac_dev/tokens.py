"""Development JWTs: HS256 tokens shaped like Supabase's, accepted by the local stack only."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from dramac_common.core.auth import dev_token_claims
from dramac_common.core.settings import DEV_JWT_ISSUER, JWT_AUDIENCE, get_settings


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
    """The claims of a valid dev token; raises ``jwt.InvalidTokenError`` otherwise (the layer's
    ``core.auth.verify_jwt``, the one JWT verification of the Python side)."""
    return dev_token_claims(token)
