"""Domain router session tokens: RS256 / ES256 / local HS256 verification, claim rules, key and config loading.

Tokens are made with PyJWT and cryptography (test-only dependencies); the
router verifies them with its own standard-library code.
"""

import hmac
import importlib
import importlib.util
import json
import time
from base64 import urlsafe_b64encode

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from dramac_common.core.settings import DEV_JWT_ISSUER, DEV_JWT_SECRET

from dramac_dev.functions_loader import load_function

NOW = 1_700_000_000
ISSUER = "https://project.supabase.co/auth/v1"


router = load_function("domain_router")  # functions/domain_router/app.py, as Lambda@Edge runs it
router_config = importlib.import_module("edge_router.config")
router_jwt = importlib.import_module("edge_router.tokens")
router_p256 = importlib.import_module("edge_router.p256")
router_local = importlib.import_module("edge_router.local")
DEV_DEFAULT_SECRET = DEV_JWT_SECRET.encode()


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int, length: int | None = None) -> str:
    return _b64(value.to_bytes(length or (value.bit_length() + 7) // 8, "big"))


def rsa_jwk(private_key, kid: str) -> dict:
    numbers = private_key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": _int_b64(numbers.n),
        "e": _int_b64(numbers.e),
    }


def ec_jwk(private_key, kid: str) -> dict:
    numbers = private_key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "crv": "P-256",
        "alg": "ES256",
        "x": _int_b64(numbers.x, 32),
        "y": _int_b64(numbers.y, 32),
    }


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
JWKS = {"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk(EC_KEY, "ec-1")]}


def make_config(**overrides):
    settings = {**router_config.DEFAULT_SETTINGS, "jwks": JWKS, "issuer": ISSUER, **overrides}
    return router_config.parse_settings(settings)


PRODUCTION = make_config()
LOCAL = make_config(mode="local", hs256_secret="dramac-local-dev-secret", issuer="dramac-local")


def claims(**overrides) -> dict:
    return {
        "sub": "5f0c5a7e-0000-4000-8000-000000000001",
        "aud": "authenticated",
        "iss": ISSUER,
        "role": "authenticated",
        "iat": NOW - 10,
        "exp": NOW + 3600,
        **overrides,
    }


def rs256(payload=None, kid="rsa-1", key=RSA_KEY) -> str:
    return jwt.encode(payload or claims(), key, algorithm="RS256", headers={"kid": kid})


def es256(payload=None, kid="ec-1", key=EC_KEY) -> str:
    return jwt.encode(payload or claims(), key, algorithm="ES256", headers={"kid": kid})


def hand_signed(header: dict, payload: dict, sign) -> str:
    """A token assembled by hand, for shapes PyJWT refuses to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def hs256(payload: dict, secret: bytes, **header) -> str:
    return hand_signed(
        {"alg": "HS256", "typ": "JWT", **header}, payload, lambda data: hmac.digest(secret, data, "sha256")
    )


def verify(token, config=PRODUCTION, now=NOW):
    return config.sessions.verify(token, now)


# --- valid tokens --------------------------------------------------------------------------------


def test_rs256_token_signed_by_configured_key_is_a_valid_session():
    assert verify(rs256())["sub"] == claims()["sub"]


def test_es256_token_signed_by_configured_key_is_a_valid_session():
    assert verify(es256())["sub"] == claims()["sub"]


def test_es256_tokens_verify_across_many_signatures():
    tokens = [es256(claims(jti=str(i))) for i in range(20)]
    assert all(verify(token) is not None for token in tokens)


def test_local_dev_token_is_a_valid_session_in_local_mode():
    token = hs256(claims(iss="dramac-local"), b"dramac-local-dev-secret")
    assert verify(token, LOCAL)["iss"] == "dramac-local"


def test_token_without_kid_is_accepted_when_only_one_key_of_its_type_exists():
    config = make_config(jwks={"keys": [rsa_jwk(RSA_KEY, "rsa-1")]})
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert verify(token, config) is not None


def test_audience_list_containing_the_configured_audience_is_accepted():
    assert verify(rs256(claims(aud=["other", "authenticated"]))) is not None


# --- claim rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "now"),
    [
        ({"exp": NOW - 31}, NOW),
        ({"nbf": NOW + 31}, NOW),
        ({"aud": "anon"}, NOW),
        ({"aud": ["anon", "service"]}, NOW),
        ({"aud": None}, NOW),
        ({"iss": "https://attacker.supabase.co/auth/v1"}, NOW),
        ({"iss": None}, NOW),
        ({"exp": None}, NOW),
        ({"exp": str(NOW + 3600)}, NOW),
        ({"exp": True}, NOW),
        ({"exp": 1e400}, NOW),
        ({"nbf": "soon"}, NOW),
        ({"sub": ""}, NOW),
        ({"sub": None}, NOW),
        ({"sub": 42}, NOW),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-audience-list",
        "missing-audience",
        "wrong-issuer",
        "missing-issuer",
        "missing-exp",
        "string-exp",
        "boolean-exp",
        "infinite-exp",
        "string-nbf",
        "empty-sub",
        "missing-sub",
        "numeric-sub",
    ],
)
def test_tokens_breaking_a_claim_rule_are_rejected(overrides, now):
    payload = {key: value for key, value in claims(**overrides).items() if value is not None}
    assert verify(rs256(payload), now=now) is None


def test_expiry_allows_thirty_seconds_of_clock_skew():
    assert verify(rs256(claims(exp=NOW - 29))) is not None


def test_not_before_allows_thirty_seconds_of_clock_skew():
    assert verify(rs256(claims(nbf=NOW + 29))) is not None


def test_cached_token_is_rejected_once_it_expires():
    token = rs256(claims(exp=NOW + 60))
    assert verify(token, now=NOW) is not None
    assert verify(token, now=NOW + 120) is None


def test_nan_expiry_is_rejected():
    token = hand_signed({"alg": "HS256"}, {}, lambda data: b"")
    header, _, _ = token.split(".")
    payload = _b64(b'{"sub": "u", "aud": "authenticated", "iss": "dramac-local", "exp": NaN}')
    signing_input = f"{header}.{payload}"
    signature = _b64(hmac.digest(b"dramac-local-dev-secret", signing_input.encode(), "sha256"))
    assert verify(f"{signing_input}.{signature}", LOCAL) is None


def test_issuer_is_not_checked_when_none_is_configured():
    config = make_config(issuer=None)
    assert verify(rs256(claims(iss="anything")), config) is not None


# --- signatures and algorithm confusion ----------------------------------------------------------


def test_tampered_payload_is_rejected():
    header, _, signature = rs256().split(".")
    forged = _b64(json.dumps(claims(sub="00000000-0000-4000-8000-00000000beef")).encode())
    assert verify(f"{header}.{forged}.{signature}") is None


@pytest.mark.parametrize("make_token", [rs256, es256], ids=["RS256", "ES256"])
def test_tampered_signature_is_rejected(make_token):
    header, payload, signature = make_token().split(".")
    raw = bytearray(jwt.utils.base64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    assert verify(f"{header}.{payload}.{_b64(bytes(raw))}") is None


def test_token_signed_by_an_unknown_key_with_a_known_kid_is_rejected():
    assert verify(rs256(key=OTHER_RSA_KEY)) is None
    assert verify(es256(key=OTHER_EC_KEY)) is None


def test_token_with_an_unknown_kid_is_rejected():
    assert verify(rs256(kid="rotated-away")) is None


def test_token_without_kid_is_rejected_when_several_keys_could_match():
    config = make_config(jwks={"keys": [rsa_jwk(RSA_KEY, "rsa-1"), rsa_jwk(OTHER_RSA_KEY, "rsa-2")]})
    assert verify(jwt.encode(claims(), RSA_KEY, algorithm="RS256"), config) is None


def test_hs256_token_signed_with_the_rsa_public_key_bytes_is_rejected():
    token = hs256(claims(), RSA_PUBLIC_PEM, kid="rsa-1")
    assert verify(token) is None


def test_hs256_token_signed_with_the_rsa_public_key_bytes_is_rejected_in_local_mode_too():
    local_with_keys = make_config(mode="local", hs256_secret="dramac-local-dev-secret")
    assert verify(hs256(claims(), RSA_PUBLIC_PEM, kid="rsa-1"), local_with_keys) is None


def test_hs256_dev_token_is_rejected_by_a_production_configuration():
    assert verify(hs256(claims(), b"dramac-local-dev-secret")) is None


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_unsigned_tokens_are_rejected(alg):
    header = _b64(json.dumps({"alg": alg}).encode())
    payload = _b64(json.dumps(claims()).encode())
    assert verify(f"{header}.{payload}.") is None
    assert verify(f"{header}.{payload}.{_b64(b'x')}") is None


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES384", "HS512", "EdDSA", None, 256, ["RS256"]])
def test_algorithms_that_are_not_configured_are_rejected(alg):
    token = rs256()
    _, payload, signature = token.split(".")
    header = _b64(json.dumps({"alg": alg, "kid": "rsa-1"}).encode())
    assert verify(f"{header}.{payload}.{signature}") is None


def test_rs256_header_on_an_es256_signature_is_rejected():
    _, payload, signature = es256().split(".")
    header = _b64(json.dumps({"alg": "RS256", "kid": "rsa-1"}).encode())
    assert verify(f"{header}.{payload}.{signature}") is None


def test_es256_header_naming_an_rsa_key_is_rejected():
    assert verify(es256(kid="rsa-1")) is None


def test_der_encoded_es256_signature_is_rejected():
    header, payload, _ = es256().split(".")
    der = EC_KEY.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    assert verify(f"{header}.{payload}.{_b64(der)}") is None


def test_es256_signature_with_zero_r_is_rejected():
    header, payload, _ = es256().split(".")
    assert verify(f"{header}.{payload}.{_b64(bytes(64))}") is None


def test_es256_accepts_the_mirrored_s_value_like_standard_ecdsa():
    header, payload, _ = es256().split(".")
    der = EC_KEY.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    mirrored = router_p256.N - s
    EC_KEY.public_key().verify(
        encode_dss_signature(r, mirrored), f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256())
    )
    token = f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + mirrored.to_bytes(32, 'big'))}"
    assert verify(token) is not None


def test_rs256_signature_with_wrong_padding_is_rejected():
    header, payload, _ = rs256().split(".")
    bad = RSA_KEY.sign(
        f"{header}.{payload}".encode(), padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
    )
    assert verify(f"{header}.{payload}.{_b64(bad)}") is None


def test_rs256_signature_over_sha1_digest_info_is_rejected():
    header, payload, _ = rs256().split(".")
    sha1_signed = RSA_KEY.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA1())
    assert verify(f"{header}.{payload}.{_b64(sha1_signed)}") is None


def test_token_with_a_critical_header_extension_is_rejected():
    token = jwt.encode(
        claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1", "crit": ["exp"], "exp": 1}
    )
    assert verify(token) is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "a.b",
        "a.b.c.d",
        "a..c",
        "!!.??.##",
        "e30.e30.e30",
        "W10.e30.AA",
        "e30.W10.AA",
        "a" * 10_000,
        "eyJhbGciOiJSUzI1NiJ9.eyJ9.x",
        "e30.e30.A",
        "e30.e30.==",
    ],
)
def test_malformed_tokens_are_rejected(token):
    assert verify(token) is None


def test_deeply_nested_json_payload_is_rejected_without_raising():
    payload = _b64(b"[" * 5000 + b"]" * 5000)
    header = _b64(json.dumps({"alg": "HS256"}).encode())
    signature = _b64(hmac.digest(b"dramac-local-dev-secret", f"{header}.{payload}".encode(), "sha256"))
    assert verify(f"{header}.{payload}.{signature}", LOCAL) is None


# --- keys and configuration ----------------------------------------------------------------------


def test_rsa_keys_shorter_than_2048_bits_are_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(router_config.ConfigError, match="2048"):
        make_config(jwks={"keys": [rsa_jwk(weak, "weak")]})


def test_ec_key_that_is_not_on_the_curve_is_refused():
    jwk = ec_jwk(EC_KEY, "ec-1")
    jwk["y"] = _int_b64((int.from_bytes(jwt.utils.base64url_decode(jwk["y"]), "big") + 1) % router_p256.P, 32)
    with pytest.raises(router_config.ConfigError, match="curve"):
        make_config(jwks={"keys": [jwk]})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "kid": "s", "k": _b64(b"secret")},
        {**rsa_jwk(RSA_KEY, "rsa-1"), "d": "AQAB"},
        {**rsa_jwk(RSA_KEY, "rsa-1"), "use": "enc"},
        {**rsa_jwk(RSA_KEY, "rsa-1"), "alg": "RS512"},
        {**ec_jwk(EC_KEY, "ec-1"), "crv": "P-384"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
        {"kty": "RSA", "n": "!!", "e": "AQAB"},
        "not-a-jwk",
    ],
    ids=["symmetric", "private-rsa", "encryption-key", "rs512", "p384", "okp", "bad-base64", "string"],
)
def test_unusable_jwks_are_refused_at_load(jwk):
    with pytest.raises(router_config.ConfigError):
        make_config(jwks={"keys": [jwk]})


def test_production_configuration_refuses_an_hs256_secret():
    with pytest.raises(router_config.ConfigError, match="local-mode"):
        make_config(hs256_secret="dramac-local-dev-secret")


@pytest.mark.parametrize(
    "overrides",
    [
        {"mode": "debug"},
        {"public_prefixes": ["/"]},
        {"login_path": "/signin"},
        {"app_domains": ["bad host"]},
        {"clock_skew_seconds": 3600},
        {"unknown_setting": 1},
        {"jwks": []},
    ],
)
def test_invalid_settings_are_refused_at_load(overrides):
    with pytest.raises(router_config.ConfigError):
        make_config(**overrides)


def test_without_bundled_config_or_local_flag_no_session_is_valid(tmp_path):
    config = router_config.load_config(str(tmp_path), {"DRAMAC_JWT_SECRET": "anything"})
    assert config.mode == "production"
    assert verify(hs256(claims(iss="dramac-local"), b"anything"), config) is None
    assert verify(rs256(), config) is None


def test_local_flag_without_bundled_config_accepts_dev_tokens_signed_with_the_default_secret(tmp_path):
    config = router_config.load_config(str(tmp_path), {"DRAMAC_ROUTER_LOCAL": "1"})
    assert config.mode == "local"
    assert verify(hs256(claims(iss="dramac-local"), DEV_DEFAULT_SECRET), config) is not None


def test_local_flag_uses_dramac_jwt_secret_when_set(tmp_path):
    config = router_config.load_config(
        str(tmp_path), {"DRAMAC_ROUTER_LOCAL": "1", "DRAMAC_JWT_SECRET": "s3cret"}
    )
    assert verify(hs256(claims(iss="dramac-local"), b"s3cret"), config) is not None
    assert verify(hs256(claims(iss="dramac-local"), DEV_DEFAULT_SECRET), config) is None


def test_bundled_config_wins_over_the_local_flag(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"jwks": JWKS, "issuer": ISSUER}))
    config = router_config.load_config(str(tmp_path), {"DRAMAC_ROUTER_LOCAL": "1"})
    assert config.mode == "production"
    assert verify(rs256(), config) is not None
    assert verify(hs256(claims(iss="dramac-local"), DEV_DEFAULT_SECRET), config) is None


def test_malformed_bundled_config_fails_loudly(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(router_config.ConfigError, match=r"config\.json"):
        router_config.load_config(str(tmp_path), {})


def test_local_settings_take_the_dev_secret_and_issuer_of_the_layer_so_dramac_token_tokens_are_accepted():
    from dramac_dev.tokens import issue_token

    settings = router_local.local_settings({})
    assert (settings["hs256_secret"], settings["issuer"]) == (DEV_JWT_SECRET, DEV_JWT_ISSUER)
    config = router_config.parse_settings(settings)
    user = "5f0c5a7e-0000-4000-8000-000000000001"
    assert config.sessions.verify(issue_token(user), time.time())["sub"] == user


def test_handler_loads_the_local_configuration_once_when_flagged(monkeypatch):
    monkeypatch.setenv("DRAMAC_ROUTER_LOCAL", "1")
    monkeypatch.delenv("DRAMAC_JWT_SECRET", raising=False)
    monkeypatch.setattr(router, "_config", None)
    token = jwt.encode(
        {
            "sub": "5f0c5a7e-0000-4000-8000-000000000001",
            "aud": "authenticated",
            "iss": "dramac-local",
            "role": "authenticated",
            "iat": 0,
            "exp": 4_102_444_800,
        },
        "dramac-local-dev-secret" * 2,
        algorithm="HS256",
    )  # wrong secret: the handler must redirect
    request = {
        "clientIp": "127.0.0.1",
        "method": "GET",
        "querystring": "",
        "uri": "/dashboard",
        "headers": {
            "host": [{"key": "Host", "value": "localhost:3000"}],
            "cookie": [{"key": "Cookie", "value": f"sb-access-token={token}"}],
        },
    }
    event = {"Records": [{"cf": {"config": {"eventType": "viewer-request"}, "request": request}}]}
    assert router.handler(event, None)["status"] == "302"
    loaded = router._config
    good = hs256(
        {"sub": "u-1", "aud": "authenticated", "iss": "dramac-local", "exp": 4_102_444_800},
        DEV_DEFAULT_SECRET,
    )
    request["headers"]["cookie"] = [{"key": "Cookie", "value": f"sb-access-token={good}"}]
    assert router.handler(event, None)["uri"] == "/dashboard"
    assert router._config is loaded
