"""Session token (JWT) verification with the standard library only.

Supported algorithms, each only when a key for it is configured:

- ES256: P-256 ECDSA (Supabase's asymmetric signing keys), JWK `kty: EC`;
- RS256: RSASSA-PKCS1-v1_5 with SHA-256, JWK `kty: RSA`;
- HS256: HMAC-SHA256 with the dev secret, only in a local-mode configuration.

The token's header never chooses the key type: `alg` must be one the
configuration enables and the key is looked up by `kid` among keys of that
type, so `alg: none` and HS256-signed-with-a-public-key tokens fail.
"""

import binascii
import hashlib
import hmac
import json
import math
import re

from .p256 import VerifyingKey

MAX_TOKEN_LENGTH = 8192
MIN_RSA_BITS = 2048
VERIFIED_CACHE_SIZE = 512

# DER prefix of the DigestInfo for SHA-256 (RFC 8017, section 9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_B64URL_TO_STD = str.maketrans("-_", "+/")
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class JwkError(ValueError):
    """A configured key is unusable (raised while loading the configuration)."""


class RsaPublicKey:
    __slots__ = ("e", "kid", "n", "size")

    def __init__(self, kid: str | None, n: int, e: int):
        self.kid, self.n, self.e = kid, n, e
        self.size = (n.bit_length() + 7) // 8


class EcPublicKey:
    __slots__ = ("kid", "verifying_key")

    def __init__(self, kid: str | None, x: int, y: int):
        self.kid = kid
        self.verifying_key = VerifyingKey(x, y)


def b64url_decode(segment: str) -> bytes:
    """Strict base64url (no padding, alphabet only); raises ValueError."""
    if len(segment) % 4 == 1:
        raise ValueError("impossible base64 length")
    padded = segment.translate(_B64URL_TO_STD) + "=" * (-len(segment) % 4)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from None


def public_key_from_jwk(jwk: object) -> RsaPublicKey | EcPublicKey:
    """Turn one public JWK into a key object; refuses private or weak keys."""
    if not isinstance(jwk, dict):
        raise JwkError("a JWK must be a JSON object")
    if any(member in jwk for member in _PRIVATE_JWK_MEMBERS):
        raise JwkError("a JWK carries private or symmetric key material; only public keys belong at the edge")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JwkError("a JWK kid must be a string")
    if jwk.get("use", "sig") != "sig":
        raise JwkError(f"JWK {kid!r} is not a signing key (use={jwk.get('use')!r})")
    try:
        if jwk.get("kty") == "RSA":
            return _rsa_key(kid, jwk)
        if jwk.get("kty") == "EC":
            return _ec_key(kid, jwk)
    except (ValueError, TypeError, AttributeError) as error:
        raise JwkError(f"JWK {kid!r} is malformed: {error}") from None
    raise JwkError(f"JWK {kid!r} has an unsupported kty {jwk.get('kty')!r} (expected RSA or EC)")


def _rsa_key(kid: str | None, jwk: dict) -> RsaPublicKey:
    if jwk.get("alg", "RS256") != "RS256":
        raise JwkError(f"RSA JWK {kid!r} has alg {jwk.get('alg')!r}; only RS256 is supported")
    n = int.from_bytes(b64url_decode(jwk["n"]), "big")
    e = int.from_bytes(b64url_decode(jwk["e"]), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise JwkError(f"RSA JWK {kid!r} is shorter than {MIN_RSA_BITS} bits")
    if e < 3 or e % 2 == 0:
        raise JwkError(f"RSA JWK {kid!r} has an invalid public exponent")
    return RsaPublicKey(kid, n, e)


def _ec_key(kid: str | None, jwk: dict) -> EcPublicKey:
    if jwk.get("crv") != "P-256" or jwk.get("alg", "ES256") != "ES256":
        raise JwkError(f"EC JWK {kid!r} must be crv P-256 with alg ES256")
    x_bytes, y_bytes = b64url_decode(jwk["x"]), b64url_decode(jwk["y"])
    if len(x_bytes) != 32 or len(y_bytes) != 32:
        raise JwkError(f"EC JWK {kid!r} coordinates must be 32 bytes")
    return EcPublicKey(kid, int.from_bytes(x_bytes, "big"), int.from_bytes(y_bytes, "big"))


class SessionVerifier:
    """Verifies session tokens against the configured keys and claim rules.

    Signature checks are cached per token string (the same browser sends the
    same token on every request); time-based claims are checked every time.
    """

    def __init__(
        self,
        keys: list,
        *,
        hs256_secret: bytes | None,
        audience: str | None,
        issuer: str | None,
        clock_skew_seconds: float,
    ):
        self._keys: dict[str, list[RsaPublicKey] | list[EcPublicKey]] = {
            "RS256": [key for key in keys if isinstance(key, RsaPublicKey)],
            "ES256": [key for key in keys if isinstance(key, EcPublicKey)],
        }
        self._hs256_secret = hs256_secret
        self._audience = audience
        self._issuer = issuer
        self._skew = clock_skew_seconds
        self._verified: dict[str, dict] = {}

    @property
    def algorithms(self) -> frozenset:
        enabled = {alg for alg, keys in self._keys.items() if keys}
        if self._hs256_secret:
            enabled.add("HS256")
        return frozenset(enabled)

    def verify(self, token: str | None, now: float) -> dict | None:
        """The token's claims when it is a valid session at `now`, else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if claims is None:
                return None
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        return claims if self._claims_are_valid(claims, now) else None

    def _verify_signature(self, token: str) -> dict | None:
        if not _TOKEN_SHAPE.fullmatch(token):
            return None
        header_b64, payload_b64, signature_b64 = token.split(".")
        try:
            header = _json_object(b64url_decode(header_b64))
            signature = b64url_decode(signature_b64)
        except ValueError:
            return None
        if header is None or "crit" in header:  # no extensions are understood, so none may be critical
            return None
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not self._signature_matches(header.get("alg"), header.get("kid"), signing_input, signature):
            return None
        try:
            return _json_object(b64url_decode(payload_b64))
        except ValueError:
            return None

    def _signature_matches(self, alg: object, kid: object, signing_input: bytes, signature: bytes) -> bool:
        if alg == "HS256":
            if not self._hs256_secret:
                return False
            expected = hmac.digest(self._hs256_secret, signing_input, "sha256")
            return hmac.compare_digest(expected, signature)
        keys = self._keys.get(alg) if isinstance(alg, str) else None
        if not keys:
            return False
        if kid is None:
            candidates = list(keys) if len(keys) == 1 else []  # without a kid only an unambiguous key
        else:
            candidates = [key for key in keys if key.kid == kid]
        return any(_verify_rs256(key, signing_input, signature) if isinstance(key, RsaPublicKey)
                   else isinstance(key, EcPublicKey) and _verify_es256(key, signing_input, signature)
                   for key in candidates)

    def _claims_are_valid(self, claims: dict, now: float) -> bool:
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or not _is_number(exp) or now > exp + self._skew:
            return False
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_number(nbf) or now + self._skew < nbf:
                return False
        if self._audience is not None:
            aud = claims.get("aud")
            if not (aud == self._audience or (isinstance(aud, list) and self._audience in aud)):
                return False
        if self._issuer is not None and claims.get("iss") != self._issuer:
            return False
        sub = claims.get("sub")
        return isinstance(sub, str) and sub != ""


def _verify_rs256(key: RsaPublicKey, signing_input: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 verify: recompute the whole EMSA encoding and compare it."""
    if len(signature) != key.size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    encoded = pow(s, key.e, key.n).to_bytes(key.size, "big")
    digest_info = SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (key.size - 3 - len(digest_info)) + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def _verify_es256(key: EcPublicKey, signing_input: bytes, signature: bytes) -> bool:
    """JWS ES256 signatures are the raw 64-byte r || s, not DER."""
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    return key.verifying_key.verify_digest(hashlib.sha256(signing_input).digest(), r, s)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _json_object(raw: bytes) -> dict | None:
    """Parse a JSON object; NaN/Infinity and deep nesting count as malformed."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
