"""One set of token vectors, two verifiers: the layer's (``core.auth.verify_jwt``, PyJWT: handler-verified
bearers, ``dramac dev``'s gateway) and the domain router's standard-library one (``edge_router.tokens``,
which a Lambda@Edge bundle carries instead of the layer). Each vector must get the same verdict from
both, so the two runtimes accept exactly the same sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dramac_common.core.auth import verify_jwt
from edge_router.config import parse_settings
from edge_router.defaults import DEFAULT_SETTINGS

SECRET = "vector-secret-of-at-least-thirty-two-bytes!"
ISSUER = "https://project.supabase.co/auth/v1"
AUDIENCE = "authenticated"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()) if isinstance(key, rsa.RSAPrivateKey)
                     else jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


ROUTER = parse_settings({**DEFAULT_SETTINGS, "mode": "local", "hs256_secret": SECRET, "issuer": ISSUER,
                         "audience": AUDIENCE, "jwks": {"keys": [_jwk(RSA_KEY, "rsa-1"), _jwk(EC_KEY, "ec-1")]}})

RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "5f0c5a7e-0000-4000-8000-000000000001", "aud": AUDIENCE, "iss": ISSUER, "iat": now,
            "exp": now + 600}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}."


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(json.dumps(claims(sub='someone-else')).encode())}.{signature}"


def confused(payload: dict[str, Any]) -> str:
    """HS256 over the RSA public key's PEM: the algorithm-confusion attack."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(RSA_PUBLIC_PEM, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def rs256(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})


def es256(payload: dict[str, Any], key: Any = EC_KEY) -> str:
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": "ec-1"})


# (name, token maker, the layer's key and algorithms for it, the verdict both must give)
VECTORS: list[tuple[str, Callable[[], str], str, bool]] = [
    ("hs256 valid", lambda: hs256(claims()), "hs", True),
    ("rs256 valid", lambda: rs256(claims()), "rsa", True),
    ("es256 valid", lambda: es256(claims()), "ec", True),
    ("audience in a list", lambda: hs256(claims(aud=["other", AUDIENCE])), "hs", True),
    ("within the clock skew", lambda: hs256(claims(exp=int(time.time()) - 10)), "hs", True),
    ("expired", lambda: hs256(claims(exp=int(time.time()) - 120)), "hs", False),
    ("not yet valid", lambda: hs256(claims(nbf=int(time.time()) + 600)), "hs", False),
    ("no expiry", lambda: hs256(claims(exp=None)), "hs", False),
    ("no subject", lambda: hs256(claims(sub=None)), "hs", False),
    ("wrong audience", lambda: hs256(claims(aud="anon")), "hs", False),
    ("no audience", lambda: hs256(claims(aud=None)), "hs", False),
    ("wrong issuer", lambda: hs256(claims(iss="https://evil.example/auth/v1")), "hs", False),
    ("another secret", lambda: hs256(claims(), "another-secret-of-at-least-thirty-two-bytes"), "hs", False),
    ("another ec key", lambda: es256(claims(), OTHER_EC_KEY), "ec", False),
    ("alg none", lambda: unsigned(claims()), "hs", False),
    ("tampered payload", lambda: tampered(rs256(claims())), "rsa", False),
    ("hs256 signed with the rsa public key", lambda: confused(claims()), "rsa", False),
    ("not a token", lambda: "not.a.token", "hs", False),
]


def layer_verdict(token: str, key_kind: str) -> bool:
    key, algorithms = {"hs": (SECRET, ("HS256",)), "rsa": (RSA_KEY.public_key(), ("RS256", "ES256")),
                       "ec": (EC_KEY.public_key(), ("RS256", "ES256"))}[key_kind]
    try:
        verify_jwt(token, key, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER)
    except jwt.InvalidTokenError:
        return False
    return True


def router_verdict(token: str) -> bool:
    return ROUTER.sessions.verify(token, time.time()) is not None


@pytest.mark.parametrize(("make", "key_kind", "accepted"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_the_layer_and_the_router_give_every_vector_the_same_verdict(make, key_kind, accepted):
    token = make()
    assert (layer_verdict(token, key_kind), router_verdict(token)) == (accepted, accepted)
